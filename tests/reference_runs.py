"""Runs the tests compare: the book's own image to image (alone, or against the library's pipeline), and a
scheduler that records its ``set_timesteps`` calls."""

from __future__ import annotations

import pytest
import torch
from diffusers import (
    SchedulerMixin,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
)
from PIL import Image

from helpers.checks import quiet_copy
from helpers.img2img import img2img


def seeded_img2img(
    pipe: StableDiffusionPipeline,
    image: Image.Image,
    prompt: str,
    strength: float,
    num_inference_steps: int,
    seed: int = 3,
) -> list[Image.Image]:
    """``img2img``'s pictures from a CPU generator seeded with ``seed``, without a progress bar."""
    return img2img(
        pipe,
        image,
        prompt,
        strength=strength,
        num_inference_steps=num_inference_steps,
        generator=torch.Generator().manual_seed(seed),
        progress=False,
    )


def img2img_library_and_ours(
    pipe: StableDiffusionPipeline,
    image: Image.Image,
    prompt: str,
    strength: float,
    num_inference_steps: int,
) -> tuple[list[Image.Image], list[Image.Image]]:
    """``StableDiffusionImg2ImgPipeline``'s pictures and ``img2img``'s, on ``pipe``'s parts from the same seed."""
    expected = quiet_copy(pipe, StableDiffusionImg2ImgPipeline)(
        prompt,
        image=image,
        strength=strength,
        num_inference_steps=num_inference_steps,
        generator=torch.Generator().manual_seed(3),
    ).images
    return expected, seeded_img2img(pipe, image, prompt, strength, num_inference_steps)


def record_set_timesteps(
    monkeypatch: pytest.MonkeyPatch, scheduler: SchedulerMixin
) -> list[tuple]:
    """The list that the positional arguments of each of ``scheduler``'s ``set_timesteps`` calls go to from now on
    (the calls still set the timesteps)."""
    calls = []
    set_timesteps = scheduler.set_timesteps
    monkeypatch.setattr(
        scheduler,
        "set_timesteps",
        lambda *args, **kwargs: calls.append(args) or set_timesteps(*args, **kwargs),
    )
    return calls
