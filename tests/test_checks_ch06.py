"""Chapter 6's checks pass the reference solutions, fail plausible wrong answers, and say NOT DONE on ``...``."""

from __future__ import annotations

import pytest
import torch
from diffusers import StableDiffusionPipeline

from helpers.checks import ExerciseFailed
from helpers.checks.ch06 import (
    check_batch_embeds,
    check_batch_latents,
    check_euler_ancestral,
    check_guidance,
    euler_init_noise_sigma,
)
from helpers.pipeline import encode_prompt, generate, make_latents
from helpers.schedulers import make_scheduler

PROMPTS = ["a red circle on a blue background", "a green square on a white background"]
CROSS = "a big white cross on a black background"


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


STEPS = 25


def batch_latents(pipe: StableDiffusionPipeline, generator, steps: int | None = STEPS) -> torch.Tensor:
    """The exercise's latents for an Euler scheduler set to ``steps`` (None: ``set_timesteps`` forgotten)."""
    euler = make_scheduler("Euler", pipe.scheduler.config)
    if steps is not None:
        euler.set_timesteps(steps)
    size = pipe.unet.config.sample_size
    return make_latents(3, pipe.unet.config.in_channels, size, size, euler, generator)


def cross_picture(pipe: StableDiffusionPipeline, scheduler_name: str):
    return generate(pipe, CROSS, num_inference_steps=20, guidance_scale=7.5, generator=seeded(1),
                    scheduler=make_scheduler(scheduler_name, pipe.scheduler.config), progress=False)[0]


@pytest.fixture(scope="module")
def answers(tiny_pipe: StableDiffusionPipeline) -> list[tuple]:
    """(check, reference answer, wrong answer) for every exercise of the chapter (``tiny_pipe``: conftest.py)."""
    pipe = tiny_pipe
    return [
        (check_guidance, lambda uncond, text, scale: uncond + scale * (text - uncond),
         lambda uncond, text, scale: text + scale * (uncond - text)),
        (check_batch_embeds, encode_prompt(pipe.tokenizer, pipe.text_encoder, PROMPTS, ["yellow", "yellow"], 2),
         encode_prompt(pipe.tokenizer, pipe.text_encoder, PROMPTS * 2, ["yellow"] * 4)),  # rows in the wrong order
        (check_batch_latents, batch_latents(pipe, [seeded(s) for s in (10, 11, 12)]), batch_latents(pipe, seeded(10))),
        (check_euler_ancestral, cross_picture(pipe, "Euler ancestral"), cross_picture(pipe, "Euler")),
    ]


def context(check, pipe: StableDiffusionPipeline) -> tuple:
    """What a check takes besides the answer: the pipeline (and the steps), except for the guidance formula."""
    return () if check is check_guidance else (pipe, STEPS) if check is check_batch_latents else (pipe,)


def test_reference_solutions_pass(answers: list[tuple], tiny_pipe: StableDiffusionPipeline, capsys) -> None:
    for check, reference, _ in answers:
        assert check(reference, *context(check, tiny_pipe)).passed is True, check.__name__
        assert "PASS" in capsys.readouterr().out


def test_wrong_answers_fail(answers: list[tuple], tiny_pipe: StableDiffusionPipeline) -> None:
    for check, _, wrong in answers:
        with pytest.raises(ExerciseFailed):
            check(wrong, *context(check, tiny_pipe))


@pytest.mark.parametrize("check", [check_guidance, check_batch_embeds, check_batch_latents, check_euler_ancestral])
def test_placeholders_are_not_done(tiny_pipe: StableDiffusionPipeline, check, capsys) -> None:
    assert check(..., *context(check, tiny_pipe)).passed is False
    assert "NOT DONE" in capsys.readouterr().out


def test_batch_latents_must_be_scaled_by_init_noise_sigma(tiny_pipe: StableDiffusionPipeline) -> None:
    """With the pipeline's own scheduler (init_noise_sigma 1) a forgotten scaling once passed; Euler's shows it."""
    seeds = [seeded(s) for s in (10, 11, 12)]
    bare = batch_latents(tiny_pipe, seeds) / euler_init_noise_sigma(tiny_pipe, STEPS)
    with pytest.raises(ExerciseFailed, match="picture 0 is the bare noise: multiply it by the scheduler's "
                                             "init_noise_sigma"):
        check_batch_latents(bare, tiny_pipe, STEPS)
    with pytest.raises(ExerciseFailed, match="before set_timesteps: call set_timesteps"):
        check_batch_latents(batch_latents(tiny_pipe, [seeded(s) for s in (10, 11, 12)], None), tiny_pipe, STEPS)
