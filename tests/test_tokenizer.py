"""The shipped tokenizer is OpenAI CLIP's, the one Stable Diffusion v1.5 uses: same ids as published references."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import CLIPTokenizer

# Ids published with independent CLIP tokenizer ports (Apple's ml-stable-diffusion tests, open_clip ports).
REFERENCE_IDS = {
    "a photo of an astronaut": [49406, 320, 1125, 539, 550, 18376, 49407],
    "a photo of an astronaut riding a horse on mars": [
        49406,
        320,
        1125,
        539,
        550,
        18376,
        6765,
        320,
        4558,
        525,
        7496,
        49407,
    ],
    "Apple CoreML developer tools on a Macbook Air are fast": [
        49406,
        3055,
        19622,
        5780,
        10929,
        5771,
        525,
        320,
        20617,
        1922,
        631,
        1953,
        49407,
    ],
    "a photo of a cat": [49406, 320, 1125, 539, 320, 2368, 49407],
    "the black dog": [49406, 518, 1449, 1929, 49407],
}


@pytest.fixture(scope="module")
def tokenizer(model_dir: Path) -> CLIPTokenizer:
    """The tokenizer shipped with tiny-shapes-sd."""
    return CLIPTokenizer.from_pretrained(model_dir / "tokenizer", local_files_only=True)


@pytest.mark.parametrize("prompt", sorted(REFERENCE_IDS))
def test_ids_match_clip(tokenizer: CLIPTokenizer, prompt: str) -> None:
    assert tokenizer(prompt).input_ids == REFERENCE_IDS[prompt]


def test_vocabulary_and_special_tokens(tokenizer: CLIPTokenizer) -> None:
    assert len(tokenizer) == 49408
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (
        49406,
        49407,
        49407,
    )
    assert tokenizer.model_max_length == 77


def test_padding_repeats_the_end_token(tokenizer: CLIPTokenizer) -> None:
    ids = tokenizer(
        "a photo of a cat", padding="max_length", max_length=77, truncation=True
    ).input_ids
    assert ids == REFERENCE_IDS["a photo of a cat"] + [49407] * 70


def test_truncation_keeps_the_end_token(tokenizer: CLIPTokenizer) -> None:
    ids = tokenizer(
        "a photo of a cat " * 30, padding="max_length", max_length=77, truncation=True
    ).input_ids
    assert len(ids) == 77 and ids[0] == 49406 and ids[-1] == 49407
    assert ids[1:6] == [320, 1125, 539, 320, 2368]


def test_case_and_spaces_do_not_matter(tokenizer: CLIPTokenizer) -> None:
    assert tokenizer("A  Photo of a CAT").input_ids == REFERENCE_IDS["a photo of a cat"]
