"""Checks for chapter 2, "The VAE"."""

from __future__ import annotations

from typing import Any

import torch

from ..latents import vae_scale_factor
from . import Verdict, expect, run_check


def check_latent_shape(latent_shape: Any, vae: Any) -> Verdict:
    """Latents of 3 pictures, each ``sample_size`` high and twice as wide: (3, channels, H / f, 2 W / f)."""

    def test(shape: Any) -> None:
        expect(
            isinstance(shape, tuple)
            and len(shape) == 4
            and all(isinstance(n, int) for n in shape),
            f"expected a tuple of four ints (batch, channels, height, width), got {shape!r}",
        )
        factor, native, channels = (
            vae_scale_factor(vae),
            vae.config.sample_size,
            vae.config.latent_channels,
        )
        expected = (3, channels, native // factor, 2 * native // factor)
        expect(
            shape[0] == 3,
            f"the batch holds 3 pictures, but the shape starts with {shape[0]}",
        )
        expect(
            shape[1] == channels,
            f"the latents have {channels} channels (vae.config.latent_channels), not {shape[1]}",
        )
        expect(
            shape[2:] != expected[2:][::-1],
            "height comes before width in a tensor's shape",
        )
        expect(
            shape == expected,
            f"got {shape}: each side shrinks by the scale factor {factor}",
        )

    return run_check("ex-02-latent-shape", latent_shape, test)


def check_kl(kl_by_hand: Any, posterior: Any) -> Verdict:
    """The KL divergence of the posterior to N(0, I), one value per picture, as ``posterior.kl()`` computes it."""

    def test(kl: Any) -> None:
        # posterior.kl()'s formula in float32: in float16 (on a GPU) its sum of ~16,000 terms overflows to inf.
        mean, logvar = posterior.mean.float(), posterior.logvar.float()
        expected = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(
            dim=(1, 2, 3)
        )  # (B,)
        expect(
            isinstance(kl, torch.Tensor), f"expected a tensor, got {type(kl).__name__}"
        )
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
