"""The from-scratch DDIM steps equal ``DDIMScheduler.step``: the epsilon form over whole trajectories at both model
sizes, the v form on model-free predictions (v computed from known x0 and noise) at every timestep."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    StableDiffusionPipeline,
)

from helpers.checks import quiet_copy
from helpers.pipeline import generate
from helpers.schedulers import (
    SCHEDULERS,
    CheckedDDIMScheduler,
    ddim_step,
    ddim_step_v,
    make_scheduler,
)
from helpers.sd15 import sd15_config

PROMPT = "a red circle on a blue background"


def checked_trajectory(
    pipe: StableDiffusionPipeline, steps: int
) -> CheckedDDIMScheduler:
    """Run the hand-built loop with a scheduler that compares ddim_step with the library at every step."""
    checked = CheckedDDIMScheduler.from_config(pipe.scheduler.config)
    generate(
        pipe,
        PROMPT,
        num_inference_steps=steps,
        generator=torch.Generator().manual_seed(0),
        scheduler=checked,
        progress=False,
    )
    return checked


@pytest.mark.parametrize(
    "pipe_fixture, steps",
    [("tiny_pipe", 25), ("sd15_pipe", 3)],
    ids=["over a tiny trajectory", "at sd15 size"],
)
def test_ddim_step_equals_library(
    request: pytest.FixtureRequest, pipe_fixture: str, steps: int
) -> None:
    checked = checked_trajectory(request.getfixturevalue(pipe_fixture), steps=steps)
    assert len(checked.matches) == steps and all(checked.matches)
    assert max(checked.differences) < 1e-5


def test_stochastic_ddim_step_equals_library_inside_the_library_pipeline(
    tiny_pipe: StableDiffusionPipeline,
) -> None:
    """eta=1 through StableDiffusionPipeline's own loop: the same fresh noise, the same steps."""
    checked = CheckedDDIMScheduler.from_config(tiny_pipe.scheduler.config)
    quiet_copy(tiny_pipe, scheduler=checked)(
        PROMPT,
        num_inference_steps=10,
        eta=1.0,
        generator=torch.Generator().manual_seed(0),
    )
    assert len(checked.matches) == 10 and all(checked.matches)


def test_checked_scheduler_notices_a_difference() -> None:
    """With eta=1 and no generator, the two steps draw different noise: the check must say so."""
    checked = CheckedDDIMScheduler.from_config(sd15_config("scheduler"))
    checked.set_timesteps(10)
    sample, noise_pred = torch.randn(2, 1, 4, 8, 8)
    checked.step(noise_pred, checked.timesteps[0], sample, eta=1.0)
    assert checked.matches == [False] and checked.differences[0] > 1e-3


def test_ddim_step_returns_the_library_prediction_of_x0() -> None:
    scheduler = DDIMScheduler.from_config(sd15_config("scheduler"))
    scheduler.set_timesteps(20)
    sample, noise_pred = torch.randn(2, 2, 4, 8, 8)
    for t in (
        scheduler.timesteps[0],
        int(scheduler.timesteps[-1]),
    ):  # a tensor timestep, and the final int one
        ours, library = (
            ddim_step(scheduler, noise_pred, t, sample),
            scheduler.step(noise_pred, t, sample),
        )
        assert torch.allclose(ours.pred_original_sample, library.pred_original_sample)
        assert torch.allclose(ours.prev_sample, library.prev_sample)


@pytest.mark.parametrize(
    "step, overrides, message",
    [
        (ddim_step, {"prediction_type": "v_prediction"}, "noise prediction"),
        (ddim_step_v, {}, "v prediction"),  # the config's own: epsilon
    ],
    ids=["ddim_step given a v-predicting scheduler", "ddim_step_v given SD's"],
)
def test_each_ddim_step_refuses_the_other_prediction_type(
    step: Callable, overrides: dict, message: str
) -> None:
    scheduler = DDIMScheduler.from_config(sd15_config("scheduler"), **overrides)
    scheduler.set_timesteps(10)
    with pytest.raises(ValueError, match=message):
        step(
            scheduler,
            torch.zeros(1, 4, 8, 8),
            scheduler.timesteps[0],
            torch.zeros(1, 4, 8, 8),
        )


def test_checked_scheduler_tests_the_candidate_it_is_given() -> None:
    """An instance given a wrong candidate (the noise added instead of removed) records the mismatch."""

    def sign_flipped(scheduler, model_output, timestep, sample, *args):
        return ddim_step(scheduler, -model_output, timestep, sample, *args)

    checked = CheckedDDIMScheduler.from_config(sd15_config("scheduler"))
    checked.candidate = sign_flipped
    checked.set_timesteps(10)
    sample, noise_pred = torch.randn(2, 1, 4, 8, 8)
    checked.step(noise_pred, checked.timesteps[0], sample)
    assert checked.matches == [False]


@pytest.mark.parametrize(
    "spacing, zero_snr", [("leading", False), ("trailing", False), ("trailing", True)]
)
def test_ddim_step_v_equals_library_on_model_free_v(
    spacing: str, zero_snr: bool
) -> None:
    """v = √ᾱ ε - √(1-ᾱ) x0 from known x0 and noise: both steps agree, and both recover x0 exactly."""
    scheduler = DDIMScheduler.from_config(
        sd15_config("scheduler"),
        prediction_type="v_prediction",
        timestep_spacing=spacing,
        rescale_betas_zero_snr=zero_snr,
    )
    scheduler.set_timesteps(10)
    clean, noise = torch.randn(
        2, 2, 4, 8, 8, generator=torch.Generator().manual_seed(0)
    )
    for t in scheduler.timesteps:
        timesteps = t.repeat(2)
        alpha_prod_t = scheduler.alphas_cumprod[t]
        v = alpha_prod_t**0.5 * noise - (1 - alpha_prod_t) ** 0.5 * clean
        assert torch.allclose(
            v, scheduler.get_velocity(clean, noise, timesteps), atol=1e-6
        )
        sample = scheduler.add_noise(clean, noise, timesteps)
        ours, library = (
            ddim_step_v(scheduler, v, t, sample),
            scheduler.step(v, t, sample),
        )
        assert torch.allclose(ours.prev_sample, library.prev_sample, atol=1e-6)
        assert torch.allclose(
            ours.pred_original_sample, library.pred_original_sample, atol=1e-6
        )
        assert torch.allclose(ours.pred_original_sample, clean, atol=1e-5)


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_make_scheduler_keeps_the_model_schedule(
    tiny_pipe: StableDiffusionPipeline, name: str
) -> None:
    config = tiny_pipe.scheduler.config
    scheduler = make_scheduler(name, config)
    assert isinstance(scheduler, SCHEDULERS[name])
    assert torch.allclose(
        scheduler.alphas_cumprod, DDPMScheduler.from_config(config).alphas_cumprod
    )
    assert scheduler.config.steps_offset == config.steps_offset
    if "clip_sample" in scheduler.config:
        assert scheduler.config.clip_sample is False
    if isinstance(scheduler, DPMSolverMultistepScheduler):
        assert scheduler.config.algorithm_type == "dpmsolver++"


def test_make_scheduler_names_the_choices() -> None:
    with pytest.raises(ValueError, match="DPM-Solver"):
        make_scheduler("Heun", sd15_config("scheduler"))
