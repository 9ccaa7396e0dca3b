"""Inpainting by hand with a 4-channel UNet gives ``StableDiffusionInpaintPipeline``'s pictures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import (
    DDIMScheduler,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
)
from PIL import Image

from helpers import load_sample_image
from helpers.checks import quiet_copy
from helpers.compare import max_pixel_diff
from helpers.inpaint import inpaint, latent_mask

PROMPT = "a yellow star on a blue background"


def left_half_mask(size: int = 64) -> Image.Image:
    """White (redraw) on the left half, black (keep) on the right."""
    mask = np.zeros((size, size), np.uint8)
    mask[:, : size // 2] = 255
    return Image.fromarray(mask)


def test_latent_mask_rounds_then_shrinks() -> None:
    grey = np.full((64, 64), 100, np.uint8)  # below one half: kept
    grey[:16, :16] = 200  # above one half: redrawn
    mask = latent_mask(Image.fromarray(grey), 8)
    assert mask.shape == (1, 1, 8, 8)
    assert mask[0, 0, :2, :2].eq(1).all() and mask.sum() == 4


@pytest.mark.parametrize("scheduler_class", [None, DDIMScheduler])
def test_inpaint_equals_the_pipeline(
    tiny_pipe: StableDiffusionPipeline, scheduler_class: type | None
) -> None:
    replaced = (
        {}
        if scheduler_class is None
        else {"scheduler": scheduler_class.from_config(tiny_pipe.scheduler.config)}
    )
    pipe = quiet_copy(tiny_pipe, **replaced)
    library = quiet_copy(pipe, StableDiffusionInpaintPipeline)
    image, mask = (
        load_sample_image("a red circle on a blue background"),
        left_half_mask(),
    )
    expected = library(
        PROMPT,
        image=image,
        mask_image=mask,
        num_inference_steps=10,
        generator=torch.Generator().manual_seed(2),
    ).images
    ours = inpaint(
        pipe,
        image,
        mask,
        PROMPT,
        num_inference_steps=10,
        generator=torch.Generator().manual_seed(2),
        progress=False,
    )
    assert max_pixel_diff(ours, expected) <= 1


def test_inpaint_keeps_the_unmasked_half(tiny_pipe: StableDiffusionPipeline) -> None:
    """Outside the mask the result stays near the picture (only the VAE's round trip changes it)."""
    image = load_sample_image("a red circle on a blue background")
    result = inpaint(
        tiny_pipe,
        image,
        left_half_mask(),
        PROMPT,
        num_inference_steps=10,
        generator=torch.Generator().manual_seed(2),
        progress=False,
    )[0]
    kept = np.abs(np.asarray(result, np.float32) - np.asarray(image, np.float32))[
        :, 40:
    ]
    redrawn = np.abs(np.asarray(result, np.float32) - np.asarray(image, np.float32))[
        :, :24
    ]
    assert kept.mean() < redrawn.mean()
