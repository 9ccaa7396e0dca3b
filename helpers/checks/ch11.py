"""Checks for chapter 11, "After v1.5". Expectations come from the library: diffusers' flow-matching scheduler built
from SD3's published config, and SDXL's pipelines' own ``add_time_ids``."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..architectures import build_scheduler, library_time_ids
from . import (
    Verdict,
    expect,
    expect_number,
    run_check,
    run_function_check,
)

NOISY_SHARE_STEPS = 28  # the exercise's step count: SD3's usual


def check_flow_step(flow_step: Any) -> Verdict:
    """A function (velocity, sigma, sigma_next, latents) -> the next latents, equal to the library's step."""

    def test(fn: Any) -> None:
        scheduler = build_scheduler("sd3")
        scheduler.set_timesteps(6)
        generator = torch.Generator().manual_seed(11)
        latents = torch.randn(1, 16, 4, 4, generator=generator)
        for i, t in enumerate(scheduler.timesteps):
            velocity = torch.randn(latents.shape, generator=generator)
            sigma, sigma_next = (
                scheduler.sigmas[i].item(),
                scheduler.sigmas[i + 1].item(),
            )
            got = fn(velocity, sigma, sigma_next, latents)
            want = scheduler.step(velocity, t, latents).prev_sample
            expect(
                isinstance(got, torch.Tensor) and got.shape == want.shape,
                f"expected a tensor of shape {tuple(want.shape)}, got {type(got).__name__}",
            )
            backwards = latents + (sigma - sigma_next) * velocity
            expect(
                not torch.allclose(got, backwards, atol=1e-5),
                "the step goes the wrong way: sigma falls, so multiply the velocity by (sigma_next - sigma)",
            )
            expect(
                sigma_next == 0
                or not torch.allclose(got, latents - sigma * velocity, atol=1e-5),
                "that jumps straight to the predicted clean latents x_0 = x - sigma v; a step goes to sigma_next",
            )
            worst = (got - want).abs().max().item()
            expect(
                torch.allclose(got, want, atol=1e-5),
                f"step {i} (sigma {sigma:.3f} -> {sigma_next:.3f}) differs from FlowMatchEulerDiscreteScheduler."
                f"step by up to {worst:.3g}",
            )
            latents = want

    return run_function_check(
        "ex-11-flow-step", flow_step, test, "a function of four arguments"
    )


def check_refiner_time_ids(refiner_time_ids: Any) -> Verdict:
    """A function (original_size, crops_coords_top_left, aesthetic_score) -> the refiner's add_time_ids, (1, 5)."""

    def test(fn: Any) -> None:
        for original_size, crop, score in (
            ((1024, 1024), (0, 0), 6.0),
            ((768, 1344), (32, 8), 2.5),
        ):
            got = fn(original_size, crop, score)
            want = library_time_ids(
                "sdxl_refiner", original_size, crop, aesthetic_score=score
            )
            expect(
                isinstance(got, torch.Tensor),
                f"expected a tensor like the pipeline's, got {type(got).__name__}: wrap the list in torch.tensor",
            )
            expect(
                got.numel() != 6,
                "six numbers are the base model's (with the target size): the refiner reads the "
                "aesthetic score in its place",
            )
            expect(
                tuple(got.shape) == tuple(want.shape),
                f"expected shape {tuple(want.shape)}, one row of {want.shape[1]} numbers, got {tuple(got.shape)}",
            )
            expect(
                torch.equal(got.float(), want),
                f"for {original_size}, crop {crop}, score {score}: expected {want.tolist()}, got {got.tolist()} "
                "(the order is original size, crop's top-left corner, aesthetic score)",
            )

    return run_function_check(
        "ex-11-refiner-time-ids",
        refiner_time_ids,
        test,
        "a function of three arguments",
    )


def check_noisy_share(noisy_share: Any) -> Verdict:
    """The share of SD3's 28 steps taken at sigma > 0.5, with its published shift of 3."""

    def share(shift: float | None = None) -> float:
        scheduler = (
            build_scheduler("sd3")
            if shift is None
            else build_scheduler("sd3", shift=shift)
        )
        scheduler.set_timesteps(NOISY_SHARE_STEPS)
        sigmas = scheduler.sigmas[
            :-1
        ]  # the last entry is the end point 0, where no step starts
        return (sigmas > 0.5).float().mean().item()

    def test(value: Any) -> None:
        expect_number(value, "a share between 0 and 1")
        want = share()
        expect(
            not math.isclose(value, want * NOISY_SHARE_STEPS),
            "that is a count of steps: divide by the 28 steps",
        )
        expect(
            not math.isclose(value, share(1.0)),
            "that is the unshifted schedule's share: build the scheduler from SD3's config (shift 3)",
        )
        expect(
            math.isclose(value, want, abs_tol=1e-6), f"expected {want:.4f}, got {value}"
        )

    return run_check("ex-11-noisy-share", noisy_share, test)
