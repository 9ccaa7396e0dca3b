"""Chapter 8's checks pass the reference solutions, fail plausible wrong answers and say NOT DONE on ``...``."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from helpers.checks import ExerciseFailed
from helpers.checks.ch08 import (
    check_scores_gib,
    check_sliced_attention,
    check_small_gpu,
    check_unet_fp16_gib,
    largest_batches,
)
from helpers.memory import GIB


def test_not_done_prints(expect_not_done: Callable[..., None]) -> None:
    expect_not_done(
        check_sliced_attention(...),
        check_small_gpu(..., EXPLANATION),
        check_unet_fp16_gib(...),
        check_scores_gib(...),
    )


# ex-08-sliced-attention -------------------------------------------------------------------------------------------


def slicing(
    scale: bool = True, softmax_dim: int = -1, whole: bool = False, last: bool = True
):
    """A ``sliced_attention``; the flags make the mistakes a learner might make."""

    def sliced_attention(query, key, value, slice_size):
        size = len(query) if whole else slice_size
        stop = len(query) if last else len(query) // size * size  # forgets the rest
        out = torch.zeros_like(query)
        for start in range(0, stop, size):
            rows = slice(start, start + size)
            scores = query[rows] @ key[rows].transpose(-1, -2)  # (slice, N, M)
            if scale:
                scores = scores / query.shape[-1] ** 0.5
            out[rows] = scores.softmax(dim=softmax_dim) @ value[rows]
        return out

    return sliced_attention


def test_sliced_attention() -> None:
    assert check_sliced_attention(slicing())
    for mistake, message in [
        ({"whole": True}, "was made, more than one slice's scores"),
        ({"scale": False}, "differs from"),
        ({"softmax_dim": -2}, "differs from"),
        ({"last": False}, "the last slice too"),
    ]:
        with pytest.raises(ExerciseFailed, match=message):
            check_sliced_attention(slicing(**mistake))
    with pytest.raises(ExerciseFailed, match="write the attention yourself"):
        check_sliced_attention(
            lambda q, k, v, size: torch.cat(
                [
                    F.scaled_dot_product_attention(
                        q[i : i + size], k[i : i + size], v[i : i + size]
                    )
                    for i in range(0, len(q), size)
                ]
            )
        )


# ex-08-small-gpu --------------------------------------------------------------------------------------------------

EXPLANATION = (
    "SDPA first: it is free and the default on PyTorch 2. Then VAE slicing, which costs little time. If "
    "not even one picture fits, offload the models to the CPU, at a cost in time, or draw smaller pictures."
)


def test_small_gpu() -> None:
    fits = largest_batches(7 * GIB)
    assert len(set(fits.values())) == 3, (
        "the setups must differ for the check to mean anything"
    )
    assert check_small_gpu(fits, EXPLANATION)
    wrong_answers = [
        (
            largest_batches(8 * GIB),
            EXPLANATION,
        ),  # the card's size, not what PyTorch sees
        (largest_batches(14.75 * GIB), EXPLANATION),  # the chapter's T4
        ({label: float(n) for label, n in fits.items()}, EXPLANATION),
        (fits, "SDPA"),  # no explanation
    ]
    for answer, explanation in wrong_answers:
        with pytest.raises(ExerciseFailed):
            check_small_gpu(answer, explanation)


def test_unet_fp16_gib() -> None:
    assert check_unet_fp16_gib(
        859_520_964 * 2 / 2**30
    )  # SD v1.5's UNet: 859.5M parameters
    with pytest.raises(ExerciseFailed, match="float32"):
        check_unet_fp16_gib(859_520_964 * 4 / 2**30)
    with pytest.raises(
        ExerciseFailed, match="expected"
    ):  # GB, not GiB, and a rounded count
        check_unet_fp16_gib(0.86 * 2)
    with pytest.raises(ExerciseFailed, match="number"):
        check_unet_fp16_gib("1.6 GiB")


def test_scores_gib() -> None:
    rows, heads, tokens = (
        4 * 2,
        8,
        64 * 64,
    )  # 4 prompts with guidance, SD v1's 8 heads, 64x64 latents
    assert check_scores_gib(rows * heads * tokens**2 * 2 / 2**30)
    with pytest.raises(ExerciseFailed, match="two rows"):
        check_scores_gib(4 * heads * tokens**2 * 2 / 2**30)
    with pytest.raises(ExerciseFailed, match="heads"):
        check_scores_gib(rows * tokens**2 * 2 / 2**30)
    with pytest.raises(ExerciseFailed, match="expected"):  # float32
        check_scores_gib(rows * heads * tokens**2 * 4 / 2**30)
