"""Checks for chapter 4 (the UNet): the weights that read text, the bottom of the U, the timestep features."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from diffusers import UNet2DConditionModel

from . import Verdict, expect, expect_integer, run_check


def text_reading_params(unet: UNet2DConditionModel) -> int:
    """Parameters of the cross-attention key and value projections: the only weights applied to the text."""
    return sum(
        p.numel()
        for name, p in unet.named_parameters()
        if ".attn2.to_k." in name or ".attn2.to_v." in name
    )


def check_text_reading_params(answer: Any, unet: UNet2DConditionModel) -> Verdict:
    """The number of parameters in every ``attn2.to_k`` and ``attn2.to_v``."""

    def test(count: Any) -> None:
        expect(isinstance(count, int), f"expected an int, got {type(count).__name__}")
        expected = text_reading_params(unet)
        with_queries = expected + sum(
            p.numel() for name, p in unet.named_parameters() if ".attn2.to_q." in name
        )
        expect(
            count != with_queries,
            "to_q reads the picture's features, not the text: count to_k and to_v only",
        )
        expect(
            count == expected,
            f"expected {expected:,} parameters in the cross-attention layers' to_k and to_v, "
            f"got {count:,}",
        )

    return run_check("ex-04-text-params", answer, test)


def bottom_shape(
    unet: UNet2DConditionModel, height: int, width: int
) -> tuple[int, int, int]:
    """(channels, h, w) of the mid block's output for latents of ``height`` x ``width``."""
    factor = 2 ** sum(block.downsamplers is not None for block in unet.down_blocks)
    return unet.config.block_out_channels[-1], height // factor, width // factor


def check_bottom_shape(answer: Any, unet: UNet2DConditionModel) -> Verdict:
    """The mid block's output shape (C, h, w) for latents of the native height and twice the native width."""

    def test(shape: Any) -> None:
        expect(
            isinstance(shape, (tuple, list, torch.Size)) and len(shape) == 3,
            f"expected a tuple (channels, height, width), got {shape!r}",
        )
        channels, height, width = (
            expect_integer(n, "each of bottom_shape's three numbers") for n in shape
        )
        size = unet.config.sample_size
        expected = bottom_shape(unet, size, 2 * size)
        expect(
            channels == expected[0],
            f"the mid block has {expected[0]} channels (the last of block_out_channels), "
            f"got {channels}",
        )
        expect(
            (height, width) != (expected[1], expected[1]),
            "the latents are twice as wide as they are high: so is the bottom of the U",
        )
        expect(
            (height, width) == expected[1:],
            f"expected {expected[1]}x{expected[2]} at the bottom "
            f"(one halving per down block that has a downsampler), "
            f"got {height}x{width}",
        )

    return run_check("ex-04-bottom-shape", answer, test)


def check_timestep_features(answer: Any, unet: UNet2DConditionModel) -> Verdict:
    """A function ``(timesteps, dim) -> (N, dim)`` equal to ``unet.time_proj`` (the sinusoidal features)."""

    def test(function: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
        expect(
            callable(function), f"expected a function, got {type(function).__name__}"
        )
        timesteps = torch.tensor([0, 1, 10, 250, 999])
        dim = unet.time_proj.num_channels
        expected = unet.time_proj(timesteps).float().cpu()
        features = function(timesteps, dim)
        expect(
            isinstance(features, torch.Tensor) and tuple(features.shape) == (5, dim),
            f"for 5 timesteps expected a (5, {dim}) tensor, got {getattr(features, 'shape', type(features))}",
        )
        features = features.detach().float().cpu()
        half, proj = dim // 2, unet.time_proj
        swapped = torch.cat([features[:, half:], features[:, :half]], dim=1)
        order = (
            "the cosines first, then the sines"
            if proj.flip_sin_to_cos
            else "the sines first, then the cosines"
        )
        expect(
            not torch.allclose(swapped, expected, atol=1e-4),
            f"the halves are swapped: with flip_sin_to_cos={proj.flip_sin_to_cos} come {order}",
        )
        expect(
            torch.allclose(features, expected, atol=1e-4),
            "the features differ from unet.time_proj: check the frequencies, "
            f"exp(-ln(10000) * i / ({half} - {proj.downscale_freq_shift})) for i = 0 .. {half - 1}",
        )

    return run_check("ex-04-timestep-features", answer, test)
