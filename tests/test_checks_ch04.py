"""Chapter 4's checks pass the reference solutions, fail plausible wrong answers and say NOT DONE on ``...``."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import UNet2DConditionModel

from helpers import ModelChoice, load_component
from helpers.checks import ExerciseFailed
from helpers.checks.ch04 import (
    check_bottom_shape,
    check_text_reading_params,
    check_timestep_features,
)


@pytest.fixture(scope="module")
def unet(tiny_choice: ModelChoice) -> UNet2DConditionModel:
    return load_component(UNet2DConditionModel, "unet", tiny_choice)


def sinusoids(
    timesteps: torch.Tensor, dim: int, flip: bool = True, shift: float = 0
) -> torch.Tensor:
    """Sinusoidal timestep features, cosines first when ``flip``; ``shift=1`` is the original DDPM spacing."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10000) * torch.arange(half) / (half - shift))
    angles = timesteps.float()[:, None] * frequencies[None, :]  # (N, half)
    sin, cos = torch.sin(angles), torch.cos(angles)
    return torch.cat([cos, sin] if flip else [sin, cos], dim=-1)


def test_not_done_prints(
    capsys: pytest.CaptureFixture[str], unet: UNet2DConditionModel
) -> None:
    assert not check_text_reading_params(..., unet)
    assert not check_bottom_shape(..., unet)
    assert not check_timestep_features(..., unet)
    assert capsys.readouterr().out.count("NOT DONE") == 3


def test_text_reading_params(unet: UNet2DConditionModel) -> None:
    def count(*parts: str) -> int:
        return sum(
            p.numel()
            for name, p in unet.named_parameters()
            if any(part in name for part in parts)
        )

    assert check_text_reading_params(count(".attn2.to_k.", ".attn2.to_v."), unet)
    with pytest.raises(ExerciseFailed, match="to_q reads the picture"):
        check_text_reading_params(
            count(".attn2.to_q.", ".attn2.to_k.", ".attn2.to_v."), unet
        )
    with pytest.raises(
        ExerciseFailed, match="expected"
    ):  # self-attention's keys and values read the picture
        check_text_reading_params(count(".attn1.to_k.", ".attn1.to_v."), unet)
    with pytest.raises(ExerciseFailed, match="expected an int"):
        check_text_reading_params(float(count(".attn2.to_k.", ".attn2.to_v.")), unet)


def test_bottom_shape(unet: UNet2DConditionModel) -> None:
    size = unet.config.sample_size
    latents = torch.zeros(1, unet.config.in_channels, size, 2 * size)
    shapes = []
    handle = unet.mid_block.register_forward_hook(
        lambda module, args, output: shapes.append(tuple(output.shape[1:]))
    )
    with torch.no_grad():
        unet(
            latents,
            10,
            encoder_hidden_states=torch.zeros(1, 77, unet.config.cross_attention_dim),
        )
    handle.remove()
    assert check_bottom_shape(shapes[0], unet)  # the shape the real model gives
    channels, height, width = shapes[0]
    with pytest.raises(ExerciseFailed, match="twice as wide"):
        check_bottom_shape((channels, height, height), unet)
    with pytest.raises(ExerciseFailed, match="channels"):
        check_bottom_shape((unet.config.block_out_channels[0], height, width), unet)
    with pytest.raises(ExerciseFailed, match="at the bottom"):
        check_bottom_shape((channels, 2 * height, 2 * width), unet)
    with pytest.raises(ExerciseFailed, match="tuple"):
        check_bottom_shape(channels, unet)
    with pytest.raises(
        ExerciseFailed, match="three numbers: expected a Python int, got str 'a'"
    ):
        check_bottom_shape(
            ("a", "b", "c"), unet
        )  # once crashed with "invalid literal for int()"
    with pytest.raises(ExerciseFailed, match="expected a Python int, got float"):
        check_bottom_shape((float(channels), height + 0.5, width), unet)


def test_timestep_features(unet: UNet2DConditionModel) -> None:
    assert check_timestep_features(sinusoids, unet)
    with pytest.raises(ExerciseFailed, match="swapped"):
        check_timestep_features(lambda t, dim: sinusoids(t, dim, flip=False), unet)
    with pytest.raises(ExerciseFailed, match="frequencies"):
        check_timestep_features(lambda t, dim: sinusoids(t, dim, shift=1), unet)
    with pytest.raises(ExerciseFailed, match="tensor"):
        check_timestep_features(lambda t, dim: sinusoids(t, dim)[:, :-1], unet)
