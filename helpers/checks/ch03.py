"""Checks for chapter 3 (CLIP): token ids, the pooled embedding, caption probabilities, cosine similarity."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from transformers import CLIPModel, CLIPProcessor, CLIPTextModel, CLIPTokenizer

from ..captions import tokenize
from ..images import load_sample_image
from . import (
    ExerciseFailed,
    Verdict,
    expect,
    expect_tensor,
    run_check,
    run_function_check,
    run_open_question,
)

STAR_PROMPT = "a yellow star on a black background"
TRIANGLE_PROMPT = "a green triangle on a white background"
TRIANGLE_CANDIDATES = (  # the right caption, then one thing changed in each
    "a green triangle on a white background",
    "a white triangle on a green background",
    "a green circle on a white background",
    "a green triangle on a black background",
)


def as_id_list(answer: Any) -> list[int]:
    """A list or tensor of token ids, flattened to a plain list (a (1, 77) batch counts as 77 ids)."""
    try:
        return [int(i) for i in torch.as_tensor(answer).flatten().tolist()]
    except (TypeError, ValueError, RuntimeError) as error:
        raise ExerciseFailed(
            f"expected a list or tensor of token ids, got {type(answer).__name__}"
        ) from error


def check_padded_ids(padded_ids: Any, tokenizer: CLIPTokenizer) -> Verdict:
    """``STAR_PROMPT`` tokenized as Stable Diffusion does: start token, words, end token, end tokens up to 77."""

    def test(answer: Any) -> None:
        ids = as_id_list(answer)
        length = tokenizer.model_max_length
        expect(
            len(ids) == length,
            f"expected {length} ids (padded to tokenizer.model_max_length), got {len(ids)}",
        )
        expect(
            ids[0] == tokenizer.bos_token_id,
            f"the first id should be the start token {tokenizer.bos_token_id}",
        )
        expected = tokenizer(
            STAR_PROMPT, padding="max_length", max_length=length, truncation=True
        ).input_ids
        expect(
            ids[-1] == expected[-1],
            f"padding should repeat the pad token {expected[-1]}, found {ids[-1]} last",
        )
        expect(
            ids == expected,
            f"the ids are not those of {STAR_PROMPT!r}: expected {expected[:12]}..., "
            f"got {ids[:12]}...",
        )

    return run_check("ex-03-padded-ids", padded_ids, test)


def check_pooled(
    pooled: Any, tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel
) -> Verdict:
    """The row of ``last_hidden_state`` at the first end token of ``TRIANGLE_PROMPT``: ``pooler_output``, (d,)."""

    def test(answer: Any) -> None:
        expect_tensor(answer)
        ids = tokenize(tokenizer, TRIANGLE_PROMPT, text_encoder.device)  # (1, 77)
        with torch.no_grad():
            expected = text_encoder(ids).pooler_output[0]
        vector = answer.detach().squeeze(0)
        expect(
            tuple(vector.shape) == tuple(expected.shape),
            f"expected one vector of shape {tuple(expected.shape)}, got {tuple(answer.shape)}",
        )
        tolerance = 1e-2 if expected.dtype == torch.float16 else 1e-4
        expect(
            torch.allclose(vector.to(expected), expected, atol=tolerance),
            "not the vector at the end token: find the first position whose id is tokenizer.eos_token_id",
        )

    return run_check("ex-03-pooled", pooled, test)


def clip_caption_probs(
    clip_model: CLIPModel,
    processor: CLIPProcessor,
    candidates: Sequence[str] = TRIANGLE_CANDIDATES,
) -> torch.Tensor:
    """CLIP's probabilities of ``candidates`` for the picture of ``TRIANGLE_PROMPT`` at CLIP's input size."""
    picture = load_sample_image(
        TRIANGLE_PROMPT, size=processor.image_processor.crop_size["height"]
    )
    inputs = processor(
        text=list(candidates), images=picture, return_tensors="pt", padding=True
    )
    inputs = inputs.to(clip_model.device, clip_model.dtype)
    with torch.no_grad():
        return clip_model(**inputs).logits_per_image.softmax(dim=-1)[0].float().cpu()


def check_caption_probs(
    caption_probs: Any,
    explanation: Any,
    clip_model: CLIPModel,
    processor: CLIPProcessor,
) -> Verdict:
    """One probability per caption of ``TRIANGLE_CANDIDATES``, summing to 1, as CLIP gives them for the triangle;
    and an explanation of which caption wins."""
    candidates = TRIANGLE_CANDIDATES

    def test(answer: Any) -> None:
        expect_tensor(answer)
        probs = answer.detach().float().cpu().flatten()
        expect(
            len(probs) == len(candidates),
            f"expected {len(candidates)} probabilities, one per caption, "
            f"got {len(probs)}",
        )
        expect(
            abs(float(probs.sum()) - 1) < 1e-3,
            f"probabilities sum to 1, these sum to {float(probs.sum()):.3f}: "
            "take the softmax of logits_per_image over the captions",
        )
        expected = clip_caption_probs(clip_model, processor, candidates)
        expect(
            torch.allclose(probs, expected, atol=1e-2),
            f"expected {expected.numpy().round(3)}, got {probs.numpy().round(3)}",
        )
        # Probabilities near 0 or 1 hide the logits; their logarithms do not, so a typed-in 0 or 1 shows.
        tolerance = 0.1 if clip_model.dtype == torch.float16 else 0.01
        log_gap = (
            (probs.double().log() - expected.double().log())
            .abs()
            .nan_to_num(0.0)
            .max()
            .item()
        )
        expect(
            log_gap <= tolerance,
            f"the probabilities are not CLIP's for the triangle (log-probabilities differ by "
            f"up to {log_gap:.3g}): take the softmax of clip_model's logits_per_image",
        )

    return run_open_question("ex-03-caption-probs", caption_probs, explanation, test)


def check_cosine_matrix(cosine_matrix: Any) -> Verdict:
    """A function (N, D) -> (N, N) of the cosine similarities between every pair of rows."""

    def test(function: Callable[[torch.Tensor], torch.Tensor]) -> None:
        embeds = (
            torch.randn(5, 16, generator=torch.Generator().manual_seed(0))
            * torch.arange(1.0, 6.0)[:, None]
        )
        result = function(embeds)
        expected = F.cosine_similarity(embeds[:, None, :], embeds[None, :, :], dim=-1)
        expect(
            isinstance(result, torch.Tensor) and result.shape == (5, 5),
            f"for 5 embeddings expected a (5, 5) tensor, got {getattr(result, 'shape', type(result).__name__)}",
        )
        expect(
            torch.allclose(result.diagonal(), torch.ones(5), atol=1e-5),
            "every embedding has cosine similarity 1 with itself: normalise the rows before the dot products",
        )
        expect(
            torch.allclose(result, expected, atol=1e-5),
            "the off-diagonal similarities are wrong",
        )

    return run_function_check("ex-03-cosine-matrix", cosine_matrix, test)
