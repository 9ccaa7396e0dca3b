"""Chapter 11's checks pass the reference solutions, fail plausible wrong answers and say NOT DONE on ``...``."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from helpers.checks import ExerciseFailed
from helpers.checks.ch11 import (
    check_flow_step,
    check_noisy_share,
    check_refiner_time_ids,
)


def test_not_done_prints(expect_not_done: Callable[..., None]) -> None:
    expect_not_done(
        check_flow_step(...), check_refiner_time_ids(...), check_noisy_share(...)
    )


def test_flow_step() -> None:
    assert check_flow_step(lambda v, sigma, sigma_next, x: x + (sigma_next - sigma) * v)
    with pytest.raises(ExerciseFailed, match="wrong way"):
        check_flow_step(lambda v, sigma, sigma_next, x: x + (sigma - sigma_next) * v)
    with pytest.raises(ExerciseFailed, match="clean latents"):
        check_flow_step(lambda v, sigma, sigma_next, x: x - sigma * v)
    with pytest.raises(
        ExerciseFailed, match="differs"
    ):  # a DDPM-style step on timesteps, not sigmas
        check_flow_step(
            lambda v, sigma, sigma_next, x: x + (sigma_next - sigma) * v / 1000
        )
    with pytest.raises(ExerciseFailed, match="function"):
        check_flow_step(0.5)


def test_refiner_time_ids() -> None:
    def refiner_time_ids(original_size, crops_coords_top_left, aesthetic_score):
        return torch.tensor([[*original_size, *crops_coords_top_left, aesthetic_score]])

    assert check_refiner_time_ids(refiner_time_ids)
    with pytest.raises(
        ExerciseFailed, match="base model"
    ):  # the base model's target size instead
        check_refiner_time_ids(
            lambda size, crop, score: torch.tensor([[*size, *crop, *size]])
        )
    with pytest.raises(ExerciseFailed, match="order"):
        check_refiner_time_ids(
            lambda size, crop, score: torch.tensor([[score, *size, *crop]])
        )
    with pytest.raises(ExerciseFailed, match=r"torch\.tensor"):
        check_refiner_time_ids(lambda size, crop, score: [*size, *crop, score])
    with pytest.raises(ExerciseFailed, match="shape"):  # a flat tensor, not one row
        check_refiner_time_ids(
            lambda size, crop, score: torch.tensor([*size, *crop, score])
        )


def test_noisy_share() -> None:
    assert check_noisy_share(
        21 / 28
    )  # SD3's shift 3 puts 21 of its 28 steps above sigma 0.5
    with pytest.raises(ExerciseFailed, match="count"):
        check_noisy_share(21)
    with pytest.raises(ExerciseFailed, match="unshifted"):
        check_noisy_share(0.5)
    with pytest.raises(ExerciseFailed, match="expected"):
        check_noisy_share(0.7)
    with pytest.raises(ExerciseFailed, match="share"):
        check_noisy_share("three quarters")
