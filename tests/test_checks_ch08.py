"""Chapter 8's checks pass the reference solutions, fail plausible wrong answers and say NOT DONE on ``...``."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.checks import ExerciseFailed
from helpers.checks.ch08 import check_psnr, check_scores_gib, check_unet_fp16_gib


def test_not_done_prints(capsys: pytest.CaptureFixture[str]) -> None:
    assert not check_psnr(...)
    assert not check_unet_fp16_gib(...)
    assert not check_scores_gib(...)
    assert capsys.readouterr().out.count("NOT DONE") == 3


def test_psnr() -> None:
    def psnr(picture: np.ndarray, reference: np.ndarray) -> float:
        error = np.asarray(picture, np.float64) - np.asarray(reference, np.float64)
        return 10 * np.log10(255**2 / np.mean(error**2))

    assert check_psnr(psnr)
    with pytest.raises(ExerciseFailed, match="two forms"):
        check_psnr(
            lambda a, b: 20 * np.log10(255 / np.mean((a.astype(float) - b) ** 2))
        )
    with pytest.raises(
        ExerciseFailed, match="uint8 wraps"
    ):  # differences taken in uint8
        check_psnr(
            lambda a, b: 10 * np.log10(255**2 / np.mean((a - b).astype(float) ** 2))
        )
    with pytest.raises(
        ExerciseFailed, match=r"28\.13"
    ):  # mean absolute difference, not a PSNR
        check_psnr(lambda a, b: np.abs(a.astype(float) - b).mean())
    with pytest.raises(ExerciseFailed, match="function"):
        check_psnr(28.13)


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
