"""Checks for chapter 2, "The VAE"."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..latents import decode_latents, encode_image, vae_scale_factor
from . import (
    Verdict,
    expect,
    expect_numbers,
    expect_tensor,
    run_check,
    run_open_question,
)


def picture_psnr(picture: Any, other: Any) -> float:
    """Peak signal-to-noise ratio of two same-sized pictures, in dB on the 0-255 scale."""
    error = np.asarray(picture, np.float64) - np.asarray(other, np.float64)
    mse = float(np.mean(error**2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def vae_or_resize_psnrs(vae: Any, picture: Image.Image) -> dict[str, float]:
    """PSNR of ``picture`` after the VAE's round trip (the latents' mean), and after shrinking it by the VAE's
    scale factor and enlarging it back (bicubic)."""
    round_trip = decode_latents(vae, encode_image(vae, picture, sample=False))[0]
    factor = vae_scale_factor(vae)
    small = (picture.width // factor, picture.height // factor)
    bicubic = Image.Resampling.BICUBIC
    resized = picture.resize(small, bicubic).resize(picture.size, bicubic)
    return {
        "vae": picture_psnr(picture, round_trip),
        "resize": picture_psnr(picture, resized),
    }


def check_vae_or_resize(
    vae_or_resize: Any, explanation: Any, vae: Any, picture: Image.Image
) -> Verdict:
    """{"vae": PSNR of the VAE's round trip, "resize": PSNR of a shrink-and-enlarge}, and an explanation."""

    def test(measured: Any) -> None:
        expect_numbers(
            measured, ("vae", "resize"), "vae_or_resize", "a PSNR in dB", plain=True
        )
        for key, want in vae_or_resize_psnrs(vae, picture).items():
            expect(
                abs(measured[key] - want) <= 0.1,
                f"vae_or_resize[{key!r}] is {measured[key]:.2f} dB, expected {want:.2f}: "
                "the VAE's round trip from the latents' mean (sample=False), or the picture "
                "shrunk by the scale factor and enlarged back, both bicubic",
            )

    return run_open_question("ex-02-vae-or-resize", vae_or_resize, explanation, test)


def check_kl(kl_by_hand: Any, posterior: Any) -> Verdict:
    """The KL divergence of the posterior to N(0, I), one value per picture, as ``posterior.kl()`` computes it."""

    def test(kl: Any) -> None:
        # posterior.kl()'s formula in float32: in float16 (on a GPU) its sum of ~16,000 terms overflows to inf.
        mean, logvar = posterior.mean.float(), posterior.logvar.float()
        expected = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(
            dim=(1, 2, 3)
        )  # (B,)
        expect_tensor(kl)
        expect(
            kl.shape == expected.shape,
            f"expected one value per picture, shape {tuple(expected.shape)}, "
            f"got {tuple(kl.shape)}: sum over channels, height and width",
        )
        expect(
            bool(torch.isfinite(kl).all()),
            f"got {kl.tolist()}: the sum overflowed {kl.dtype}, whose largest "
            "number is 65504 in float16; cast mean and logvar with .float() first",
        )
        expect(
            torch.allclose(kl.float(), expected, rtol=1e-3),
            f"got {kl.tolist()}, expected {expected.tolist()}: half the sum of mean^2 + var - 1 - logvar",
        )

    return run_check("ex-02-kl", kl_by_hand, test)


def check_down_shapes(down_shapes: Any, vae: Any, pixels: torch.Tensor) -> Verdict:
    """The output shape of each of the encoder's down blocks: each halves the size, but the last."""

    def test(shapes: Any) -> None:
        channels = vae.config.block_out_channels
        expect(
            isinstance(shapes, (list, tuple)) and len(shapes) == len(channels),
            f"expected a list of {len(channels)} shapes, one per down block, got {shapes!r}",
        )
        expect(
            all(isinstance(s, (tuple, torch.Size)) for s in shapes),
            "each shape must be a tuple (tuple(out.shape))",
        )
        batch, _, height, width = pixels.shape
        last = len(channels) - 1
        expected = [
            (batch, c, height // 2 ** min(i + 1, last), width // 2 ** min(i + 1, last))
            for i, c in enumerate(channels)
        ]
        got = [tuple(s) for s in shapes]
        expect(
            got != expected[::-1],
            "the shapes are in reverse order: list them from down_blocks[0] on",
        )
        expect(got == expected, f"got {got}, expected {expected}")

    return run_check("ex-02-down-shapes", down_shapes, test)
