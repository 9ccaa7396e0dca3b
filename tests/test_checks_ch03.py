"""Chapter 3's checks pass the reference solutions, fail plausible wrong answers and say NOT DONE on ``...``."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPTextModel, CLIPTokenizer

from helpers import ModelChoice, load_clip, load_component
from helpers.checks import ExerciseFailed
from helpers.checks.ch03 import (
    STAR_PROMPT,
    TRIANGLE_CANDIDATES,
    TRIANGLE_PROMPT,
    check_caption_probs,
    check_cosine_matrix,
    check_padded_ids,
    check_pooled,
    clip_caption_probs,
)

EXPLANATION = (
    "CLIP reads the caption as a whole, and the colour-swapped caption holds the same words: which word "
    "goes with which shape is the part a contrastive model learns least well."
)


@pytest.fixture(scope="module")
def parts(tiny_choice: ModelChoice) -> tuple[CLIPTokenizer, CLIPTextModel]:
    return (
        load_component(CLIPTokenizer, "tokenizer", tiny_choice),
        load_component(CLIPTextModel, "text_encoder", tiny_choice),
    )


def test_not_done_prints(
    expect_not_done: Callable[..., None], parts: tuple[CLIPTokenizer, CLIPTextModel]
) -> None:
    tokenizer, text_encoder = parts
    expect_not_done(
        check_padded_ids(..., tokenizer),
        check_pooled(..., tokenizer, text_encoder),
        check_caption_probs(..., EXPLANATION, None, None),
        check_cosine_matrix(...),
    )


def test_padded_ids(parts: tuple[CLIPTokenizer, CLIPTextModel]) -> None:
    tokenizer, _ = parts
    padded = tokenizer(
        STAR_PROMPT,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
    )
    assert check_padded_ids(padded.input_ids, tokenizer)
    assert check_padded_ids(
        torch.tensor([padded.input_ids]), tokenizer
    )  # a (1, 77) batch is fine too
    unpadded = tokenizer(STAR_PROMPT).input_ids
    with pytest.raises(ExerciseFailed, match="expected 77 ids"):
        check_padded_ids(unpadded, tokenizer)
    with pytest.raises(ExerciseFailed, match="pad token"):
        check_padded_ids(unpadded + [0] * (77 - len(unpadded)), tokenizer)
    other = tokenizer(
        "a yellow star on a blue background", padding="max_length", max_length=77
    ).input_ids
    with pytest.raises(ExerciseFailed, match="not those of"):
        check_padded_ids(other, tokenizer)


def test_pooled(parts: tuple[CLIPTokenizer, CLIPTextModel]) -> None:
    tokenizer, text_encoder = parts
    ids = tokenizer(
        TRIANGLE_PROMPT, padding="max_length", max_length=77, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        hidden = text_encoder(ids).last_hidden_state[0]  # (77, d)
    eos_index = int((ids[0] == tokenizer.eos_token_id).nonzero()[0])
    assert check_pooled(hidden[eos_index], tokenizer, text_encoder)
    with pytest.raises(ExerciseFailed, match="end token"):
        check_pooled(
            hidden[-1], tokenizer, text_encoder
        )  # the last padding position, not the first end token
    with pytest.raises(ExerciseFailed, match="shape"):
        check_pooled(hidden, tokenizer, text_encoder)


def test_caption_probs(tiny_choice: ModelChoice) -> None:
    clip_model, processor = load_clip(tiny_choice)
    probs = clip_caption_probs(clip_model, processor)
    assert check_caption_probs(probs, EXPLANATION, clip_model, processor)
    with pytest.raises(ExerciseFailed, match="sum to 1"):  # logits, not probabilities
        check_caption_probs(probs.log() + 3, EXPLANATION, clip_model, processor)
    all_on_the_least_likely = F.one_hot(
        probs.argmin(), len(TRIANGLE_CANDIDATES)
    ).float()  # a distribution, not CLIP's
    with pytest.raises(ExerciseFailed, match="expected"):
        check_caption_probs(all_on_the_least_likely, EXPLANATION, clip_model, processor)
    with pytest.raises(ExerciseFailed, match="one per caption"):
        check_caption_probs(
            probs[:2] / probs[:2].sum(), EXPLANATION, clip_model, processor
        )
    typed_in = probs.round(decimals=2)  # CLIP's answer copied by hand, to two decimals
    typed_in = typed_in / typed_in.sum()
    with pytest.raises(ExerciseFailed, match="not CLIP's for the triangle"):
        check_caption_probs(typed_in, EXPLANATION, clip_model, processor)
    with pytest.raises(ExerciseFailed, match="tensor"):
        check_caption_probs(probs.tolist(), EXPLANATION, clip_model, processor)
    with pytest.raises(ExerciseFailed, match="explanation"):
        check_caption_probs(probs, "the first", clip_model, processor)
    assert not check_caption_probs(probs, ..., clip_model, processor)


def test_cosine_matrix() -> None:
    def reference(embeds: torch.Tensor) -> torch.Tensor:
        unit = F.normalize(embeds, dim=-1)
        return unit @ unit.T

    assert check_cosine_matrix(reference)
    with pytest.raises(ExerciseFailed, match="normalise"):
        check_cosine_matrix(lambda embeds: embeds @ embeds.T)
    with pytest.raises(ExerciseFailed, match="function"):
        check_cosine_matrix(torch.eye(5))
