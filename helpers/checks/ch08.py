"""Checks for chapter 8, "Speed and memory"."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..memory import GIB, attention_scores_bytes, weights_bytes
from ..sd15 import sd15_config, sd15_on_meta
from . import Verdict, expect, expect_number, run_check

SCORES_PROMPTS = 4  # the exercise's batch of prompts, at SD v1.5's native 512x512


def check_psnr(psnr: Any) -> Verdict:
    """A function (picture, reference) -> peak signal-to-noise ratio in dB, for 0-255 pictures."""

    def test(fn: Any) -> None:
        expect(
            callable(fn),
            f"expected a function of two pictures, got {type(fn).__name__}",
        )
        reference = np.zeros((8, 8, 3), np.uint8)
        off_by_ten = np.full(
            (8, 8, 3), 10, np.uint8
        )  # MSE 100: 10 * log10(255**2 / 100) = 28.13 dB
        got = float(fn(off_by_ten, reference))
        expect(
            not math.isclose(got, 20 * math.log10(255 / 100), abs_tol=0.01),
            "20 * log10(MAX / MSE) mixes the two forms: use 10 * log10(MAX**2 / MSE) (or 20 * log10(MAX / RMSE))",
        )
        expect(
            math.isclose(got, 10 * math.log10(255**2 / 100), abs_tol=0.01),
            f"pictures that differ by 10 everywhere should give 10 * log10(255**2 / 100) = 28.13 dB, got {got:.2f}",
        )
        expect(
            math.isclose(float(fn(reference, off_by_ten)), got, abs_tol=0.01),
            "psnr(a, b) must equal psnr(b, a): take the difference in floats (uint8 wraps around below 0)",
        )
        closer = np.full((8, 8, 3), 5, np.uint8)
        expect(
            float(fn(closer, reference)) > got,
            "a closer picture must score a higher PSNR",
        )

    return run_check("ex-08-psnr", psnr, test)


def check_unet_fp16_gib(unet_fp16_gib: Any) -> Verdict:
    """GiB of SD v1.5's UNet weights in float16, from its config."""

    def test(value: Any) -> None:
        expect_number(value, "a number of GiB")
        unet = sd15_on_meta("unet")
        want = weights_bytes(unet, torch.float16) / GIB
        expect(
            not math.isclose(value, 2 * want, rel_tol=0.01),
            "that is float32's size: float16 takes 2 bytes",
        )
        expect(
            math.isclose(value, want, rel_tol=0.01),
            f"expected {want:.3f} GiB ({sum(p.numel() for p in unet.parameters()):,} parameters x 2 bytes / 2**30), "
            f"got {value}",
        )

    return run_check("ex-08-unet-weights", unet_fp16_gib, test)


def check_scores_gib(scores_gib: Any) -> Verdict:
    """GiB of one top-level self-attention's scores for 4 prompts at 512x512 in float16, with guidance."""

    def test(value: Any) -> None:
        expect_number(value, "a number of GiB")
        config = sd15_config("unet")
        want = (
            attention_scores_bytes(config, config["sample_size"], 2 * SCORES_PROMPTS)
            / GIB
        )
        expect(
            not math.isclose(value, want / 2, rel_tol=0.01),
            "classifier-free guidance runs the UNet on two rows per prompt (with and without the text)",
        )
        expect(
            not math.isclose(value, want / 8, rel_tol=0.01),
            "each of the 8 heads has its own score matrix",
        )
        expect(
            math.isclose(value, want, rel_tol=0.01),
            f"expected {want:.3f} GiB, got {value}",
        )

    return run_check("ex-08-scores", scores_gib, test)
