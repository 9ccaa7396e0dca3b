"""Chapter 4's checks pass the reference solutions, fail plausible wrong answers and say NOT DONE on ``...``."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from diffusers import UNet2DConditionModel

from helpers.checks import ExerciseFailed
from helpers.checks.ch04 import (
    TOLD_TIMESTEPS,
    TRUE_TIMESTEP,
    check_text_reading_params,
    check_timestep_features,
    check_told_timestep,
    told_timestep_errors,
)


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
    expect_not_done: Callable[..., None], tiny_unet: UNet2DConditionModel
) -> None:
    expect_not_done(
        check_text_reading_params(..., tiny_unet),
        check_timestep_features(..., tiny_unet),
    )


def test_text_reading_params(tiny_unet: UNet2DConditionModel) -> None:
    def count(*parts: str) -> int:
        return sum(
            p.numel()
            for name, p in tiny_unet.named_parameters()
            if any(part in name for part in parts)
        )

    assert check_text_reading_params(count(".attn2.to_k.", ".attn2.to_v."), tiny_unet)
    with pytest.raises(ExerciseFailed, match="to_q reads the picture"):
        check_text_reading_params(
            count(".attn2.to_q.", ".attn2.to_k.", ".attn2.to_v."), tiny_unet
        )
    with pytest.raises(
        ExerciseFailed, match="expected"
    ):  # self-attention's keys and values read the picture
        check_text_reading_params(count(".attn1.to_k.", ".attn1.to_v."), tiny_unet)
    with pytest.raises(ExerciseFailed, match="expected an int"):
        check_text_reading_params(
            float(count(".attn2.to_k.", ".attn2.to_v.")), tiny_unet
        )


# ex-04-told-timestep ----------------------------------------------------------------------------------------------

EXPLANATION = (
    "The timestep is the UNet's only clue to how much of its input is noise: told 100 it takes the noise "
    "for picture, told 900 it takes the picture for noise, and either way its prediction misses."
)


def test_told_timestep(tiny_pipe) -> None:
    errors = {t: told_timestep_errors(tiny_pipe, t) for t in TOLD_TIMESTEPS}
    assert check_told_timestep(errors, EXPLANATION, tiny_pipe)
    told_the_truth = dict.fromkeys(TOLD_TIMESTEPS, errors[TRUE_TIMESTEP])
    reversed_keys = dict(zip(TOLD_TIMESTEPS, reversed(list(errors.values()))))
    wrong_answers = [
        (told_the_truth, EXPLANATION),  # the same timestep every time
        (reversed_keys, EXPLANATION),
        ({t: errors[t] for t in TOLD_TIMESTEPS[:2]}, EXPLANATION),
        (errors, "it grows"),  # no explanation
    ]
    for answer, explanation in wrong_answers:
        with pytest.raises(ExerciseFailed):
            check_told_timestep(answer, explanation, tiny_pipe)
    assert not check_told_timestep(..., EXPLANATION, tiny_pipe)


def test_timestep_features(tiny_unet: UNet2DConditionModel) -> None:
    assert check_timestep_features(sinusoids, tiny_unet)
    with pytest.raises(ExerciseFailed, match="swapped"):
        check_timestep_features(lambda t, dim: sinusoids(t, dim, flip=False), tiny_unet)
    with pytest.raises(ExerciseFailed, match="frequencies"):
        check_timestep_features(lambda t, dim: sinusoids(t, dim, shift=1), tiny_unet)
    with pytest.raises(ExerciseFailed, match="tensor"):
        check_timestep_features(lambda t, dim: sinusoids(t, dim)[:, :-1], tiny_unet)
