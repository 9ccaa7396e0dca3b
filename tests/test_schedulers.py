"""The from-scratch DDIM step equals ``DDIMScheduler.step`` over whole trajectories, at both model sizes."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, StableDiffusionPipeline

from helpers import ModelChoice
from helpers.bench import sd15_sized_pipeline
from helpers.pipeline import generate
from helpers.schedulers import SCHEDULERS, CheckedDDIMScheduler, ddim_step, make_scheduler
from helpers.tiny.config import SD15_SCHEDULER_CONFIG

PROMPT = "a red circle on a blue background"


@pytest.fixture(scope="module")
def sd15_pipe(tiny_choice: ModelChoice) -> StableDiffusionPipeline:
    """Random weights of SD v1.5's shapes (``tiny_pipe`` and ``tiny_choice`` come from conftest.py)."""
    return sd15_sized_pipeline(tiny_choice)


def checked_trajectory(pipe: StableDiffusionPipeline, steps: int) -> CheckedDDIMScheduler:
    """Run the hand-built loop with a scheduler that compares ddim_step with the library at every step."""
    checked = CheckedDDIMScheduler.from_config(pipe.scheduler.config)
    generate(pipe, PROMPT, num_inference_steps=steps, generator=torch.Generator().manual_seed(0), scheduler=checked,
             progress=False)
    return checked


def test_ddim_step_equals_library_over_a_tiny_trajectory(tiny_pipe: StableDiffusionPipeline) -> None:
    checked = checked_trajectory(tiny_pipe, steps=25)
    assert len(checked.matches) == 25 and all(checked.matches)
    assert max(checked.differences) < 1e-5


def test_ddim_step_equals_library_at_sd15_size(sd15_pipe: StableDiffusionPipeline) -> None:
    checked = checked_trajectory(sd15_pipe, steps=3)
    assert len(checked.matches) == 3 and all(checked.matches)
    assert max(checked.differences) < 1e-5


def test_stochastic_ddim_step_equals_library_inside_the_library_pipeline(tiny_pipe: StableDiffusionPipeline) -> None:
    """eta=1 through StableDiffusionPipeline's own loop: the same fresh noise, the same steps."""
    checked = CheckedDDIMScheduler.from_config(tiny_pipe.scheduler.config)
    library = StableDiffusionPipeline(**{**tiny_pipe.components, "scheduler": checked}, requires_safety_checker=False)
    library.set_progress_bar_config(disable=True)
    library(PROMPT, num_inference_steps=10, eta=1.0, generator=torch.Generator().manual_seed(0))
    assert len(checked.matches) == 10 and all(checked.matches)


def test_checked_scheduler_notices_a_difference() -> None:
    """With eta=1 and no generator, the two steps draw different noise: the check must say so."""
    checked = CheckedDDIMScheduler.from_config(SD15_SCHEDULER_CONFIG)
    checked.set_timesteps(10)
    sample, noise_pred = torch.randn(2, 1, 4, 8, 8)
    checked.step(noise_pred, checked.timesteps[0], sample, eta=1.0)
    assert checked.matches == [False] and checked.differences[0] > 1e-3


def test_ddim_step_returns_the_library_prediction_of_x0() -> None:
    scheduler = DDIMScheduler.from_config(SD15_SCHEDULER_CONFIG)
    scheduler.set_timesteps(20)
    sample, noise_pred = torch.randn(2, 2, 4, 8, 8)
    for t in (scheduler.timesteps[0], int(scheduler.timesteps[-1])):  # a tensor timestep, and the final int one
        ours, library = ddim_step(scheduler, noise_pred, t, sample), scheduler.step(noise_pred, t, sample)
        assert torch.allclose(ours.pred_original_sample, library.pred_original_sample)
        assert torch.allclose(ours.prev_sample, library.prev_sample)


def test_ddim_step_refuses_what_it_does_not_implement() -> None:
    scheduler = DDIMScheduler.from_config(SD15_SCHEDULER_CONFIG, prediction_type="v_prediction")
    scheduler.set_timesteps(10)
    with pytest.raises(ValueError, match="noise prediction"):
        ddim_step(scheduler, torch.zeros(1, 4, 8, 8), scheduler.timesteps[0], torch.zeros(1, 4, 8, 8))


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_make_scheduler_keeps_the_model_schedule(tiny_pipe: StableDiffusionPipeline, name: str) -> None:
    config = tiny_pipe.scheduler.config
    scheduler = make_scheduler(name, config)
    assert isinstance(scheduler, SCHEDULERS[name])
    assert torch.allclose(scheduler.alphas_cumprod, DDPMScheduler.from_config(config).alphas_cumprod)
    assert scheduler.config.steps_offset == config.steps_offset
    if "clip_sample" in scheduler.config:
        assert scheduler.config.clip_sample is False
    if isinstance(scheduler, DPMSolverMultistepScheduler):
        assert scheduler.config.algorithm_type == "dpmsolver++"


def test_make_scheduler_names_the_choices() -> None:
    with pytest.raises(ValueError, match="DPM-Solver"):
        make_scheduler("Heun", SD15_SCHEDULER_CONFIG)
