"""Checks for chapter 0, "Text to image in three lines"."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from ..images import vae_scale_factor
from . import Verdict, expect, expect_number, run_check


def native_size(pipe: Any) -> int:
    """The picture side the pipeline makes by default: the UNet's sample size times the VAE's scale factor."""
    return pipe.unet.config.sample_size * vae_scale_factor(pipe.vae)


def parameter_count(part: Any) -> int:
    """Weights in one part of a pipeline (0 for parts without weights or left out)."""
    return sum(p.numel() for p in part.parameters()) if isinstance(part, torch.nn.Module) else 0


def check_same_seed(star_pictures: Any, pipe: Any) -> Verdict:
    """Two pictures made in two calls from the same seed: both the pipeline's size, identical pixel for pixel."""

    def test(pictures: Any) -> None:
        expect(isinstance(pictures, (list, tuple)) and len(pictures) == 2,
               f"expected a list of two pictures, got {type(pictures).__name__}")
        expect(all(isinstance(p, Image.Image) for p in pictures), "both pictures must be PIL images (`.images[0]`)")
        side = native_size(pipe)
        expect(all(p.size == (side, side) for p in pictures),
               f"expected pictures of {side}x{side}, got {[p.size for p in pictures]}")
        expect(pictures[0] is not pictures[1], "the two entries are one and the same object: make each in its own call")
        expect(np.array_equal(np.asarray(pictures[0]), np.asarray(pictures[1])),
               "the two pictures differ: seed a fresh generator with the same seed for each call")

    return run_check("ex-00-same-seed", star_pictures, test)


def check_prompt_rows(prompt_rows: Any, pipe: Any) -> Verdict:
    """A grid of three prompts times two pictures, one row per prompt."""

    def test(grid: Any) -> None:
        expect(isinstance(grid, Image.Image), f"expected the PIL picture `image_grid` returns, got {type(grid).__name__}")
        side = native_size(pipe)
        expected = (2 * side, 3 * side)
        expect(grid.size != (3 * side, 2 * side),
               "the grid has 2 rows of 3: give `image_grid` rows=3, so each prompt gets its own row")
        expect(grid.size == expected,
               f"expected 3 rows of 2 pictures of {side}x{side}, a {expected[0]}x{expected[1]} grid; got {grid.size}")

    return run_check("ex-00-grid", prompt_rows, test)


def check_unet_share(unet_share: Any, pipe: Any) -> Verdict:
    """The UNet's parameters as a fraction of all the pipeline's parameters."""

    def test(share: Any) -> None:
        expect_number(share)
        expect(0 < share < 1, f"expected a fraction between 0 and 1 (not a percentage), got {share}")
        total = sum(parameter_count(part) for part in pipe.components.values())
        expected = parameter_count(pipe.unet) / total
        expect(abs(share - expected) < 1e-3,
               f"got {share:.4f}: divide the UNet's parameters by those of every component together")

    return run_check("ex-00-unet-share", unet_share, test)
