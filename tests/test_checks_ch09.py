"""Chapter 9's checks pass the reference solutions, fail plausible wrong answers and say NOT DONE on ``...``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import ControlNetModel, StableDiffusionPipeline
from PIL import Image

from helpers.checks import ExerciseFailed
from helpers.checks.ch09 import (
    check_extra_parameters,
    check_latent_mask,
    check_residual_values,
    check_zero_start,
    residual_value_count,
    zero_start_measurement,
)
from helpers.inpaint import latent_mask


@pytest.fixture(scope="module")
def controlnet(tiny_pipe: StableDiffusionPipeline) -> ControlNetModel:
    return ControlNetModel.from_unet(
        tiny_pipe.unet, conditioning_embedding_out_channels=(16, 32, 64, 64)
    ).eval()


def test_not_done_prints(
    expect_not_done: Callable[..., None], controlnet: ControlNetModel
) -> None:
    expect_not_done(
        check_latent_mask(...),
        check_residual_values(..., controlnet, 64),
        check_extra_parameters(...),
        check_zero_start(..., EXPLANATION, None, None, None, None, None),
    )


def test_latent_mask() -> None:
    assert check_latent_mask(latent_mask)

    def averaged(
        mask_image: Image.Image, factor: int
    ) -> torch.Tensor:  # shrinks by averaging, then rounds
        pixels = torch.from_numpy(
            np.asarray(mask_image.convert("L"), np.float32) / 255
        )[None, None]
        return (F.avg_pool2d(pixels, factor) >= 0.5).float()

    def unrounded(
        mask_image: Image.Image, factor: int
    ) -> torch.Tensor:  # keeps grey values
        pixels = torch.from_numpy(
            np.asarray(mask_image.convert("L"), np.float32) / 255
        )[None, None]
        return F.interpolate(pixels, scale_factor=1 / factor)

    with pytest.raises(ExerciseFailed, match="nearest pixel"):
        check_latent_mask(averaged)
    with pytest.raises(ExerciseFailed, match="only 0 and 1"):
        check_latent_mask(unrounded)
    with pytest.raises(ExerciseFailed, match="function"):
        check_latent_mask(3)


def test_residual_values(controlnet: ControlNetModel) -> None:
    count = residual_value_count(controlnet, 64)
    # The tiny UNet: conv_in and 2 down blocks of 1 resnet and a downsampler at 64 and 128 channels, a last block of
    # 1 resnet at 128, and the middle block: 64*64 + (64*64 + 64*16) + (128*16 + 128*4) + 128*4 + 128*4 values.
    assert count == 64 * 64 + 64 * 64 + 64 * 16 + 128 * 16 + 128 * 4 + 128 * 4 + 128 * 4
    assert check_residual_values(count, controlnet, 64)
    with pytest.raises(ExerciseFailed, match="doubled batch"):
        check_residual_values(2 * count, controlnet, 64)
    with pytest.raises(ExerciseFailed, match="expected"):
        check_residual_values(
            count - 128 * 4, controlnet, 64
        )  # forgot the middle residual
    with pytest.raises(ExerciseFailed, match="int"):
        check_residual_values(torch.tensor(count), controlnet, 64)


def test_extra_parameters() -> None:
    assert check_extra_parameters(5 * 320 * 9)
    with pytest.raises(ExerciseFailed, match="kernel"):
        check_extra_parameters(5 * 320)
    with pytest.raises(ExerciseFailed, match="whole"):
        check_extra_parameters(9 * 320 * 9)
    with pytest.raises(ExerciseFailed, match="expected"):
        check_extra_parameters(5 * 320 * 9 + 320)  # counts a bias that does not change


EXPLANATION = """
Random weights would add random residuals to every skip connection of a trained UNet and
ruin its pictures from the first step; at zero the ControlNet is the trained model. The
zero convolutions still learn: a weight's gradient is the output's gradient times the
layer's input, and the copied encoder's features are not zero. Only the layers before
them get no gradient at the very first step.
"""


@pytest.fixture(scope="module")
def zero_start_inputs(tiny_pipe: StableDiffusionPipeline) -> tuple:
    """A latent picture, a timestep, prompt embeddings and a condition picture for the tiny UNet."""
    generator = torch.Generator().manual_seed(0)
    config = tiny_pipe.unet.config
    latents = torch.randn(1, config.in_channels, 8, 8, generator=generator)
    embeds = torch.randn(1, 77, config.cross_attention_dim, generator=generator)
    condition = torch.rand(1, 3, 64, 64, generator=generator)
    return tiny_pipe.unet, latents, torch.tensor(500), embeds, condition


def test_zero_start(zero_start_inputs: tuple) -> None:
    measured = zero_start_measurement(*zero_start_inputs)
    assert measured["residual"] == 0 and measured["encoder"] == 0
    assert measured["zero_convolutions"] > 0
    assert check_zero_start(measured, EXPLANATION, *zero_start_inputs)
    swapped = {**measured, "zero_convolutions": 0.0, "encoder": 1.0}
    with pytest.raises(ExerciseFailed, match="zero convolutions"):
        check_zero_start(swapped, EXPLANATION, *zero_start_inputs)
    trained = {**measured, "residual": 0.5}  # measured the trained ControlNet
    with pytest.raises(ExerciseFailed, match="fresh"):
        check_zero_start(trained, EXPLANATION, *zero_start_inputs)
    averaged = {**measured, "zero_convolutions": measured["zero_convolutions"] / 100}
    with pytest.raises(ExerciseFailed, match="expected"):
        check_zero_start(averaged, EXPLANATION, *zero_start_inputs)
    with pytest.raises(ExerciseFailed, match="keys"):
        check_zero_start(measured["residual"], EXPLANATION, *zero_start_inputs)
    with pytest.raises(ExerciseFailed, match="20 words"):
        check_zero_start(measured, "It starts at zero.", *zero_start_inputs)
