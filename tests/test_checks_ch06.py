"""Chapter 6's checks pass the reference solutions, fail plausible wrong answers, and say NOT DONE on ``...``."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
import torch
from diffusers import StableDiffusionPipeline

from helpers.checks import ExerciseFailed, quiet_copy
from helpers.checks.ch06 import (
    NEGATIVE_STEPS,
    NUM_STEPS,
    PROMPT,
    check_batch_latents,
    check_guidance_rescale,
    check_negative_at_one,
    check_resume,
    euler_init_noise_sigma,
)
from helpers.compare import max_pixel_diff
from helpers.latents import decode_latents
from helpers.pipeline import denoise, encode_prompt, generate, make_latents
from helpers.schedulers import make_scheduler

EXPLANATION = (
    "With a negative prompt n the guided prediction is s eps(c) - (s - 1) eps(n): at guidance 1 the "
    "negative prompt's weight is zero, so diffusers skips the unconditional half; a third term with its "
    "own weight would let it act, at the price of a third UNet half per step."
)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def pipe(tiny_pipe: StableDiffusionPipeline) -> StableDiffusionPipeline:
    """tiny-shapes-sd with DPM-Solver++, as the chapter sets it up (``tiny_pipe``: conftest.py)."""
    scheduler = make_scheduler("DPM-Solver++", tiny_pipe.scheduler.config)
    return quiet_copy(tiny_pipe, scheduler=scheduler)


# ex-06-batch-latents ----------------------------------------------------------------------------------------------


def batch_latents(
    pipe: StableDiffusionPipeline, generator, steps: int | None = NUM_STEPS
) -> torch.Tensor:
    """The exercise's latents for an Euler scheduler set to ``steps`` (None: ``set_timesteps`` forgotten)."""
    euler = make_scheduler("Euler", pipe.scheduler.config)
    if steps is not None:
        euler.set_timesteps(steps)
    size = pipe.unet.config.sample_size
    return make_latents(
        3,
        pipe.unet.config.in_channels,
        size,
        size,
        init_noise_sigma=euler.init_noise_sigma,
        generator=generator,
    )


def test_batch_latents(pipe: StableDiffusionPipeline) -> None:
    assert check_batch_latents(
        batch_latents(pipe, [seeded(s) for s in (10, 11, 12)]), pipe, NUM_STEPS
    )
    for wrong in (
        batch_latents(pipe, seeded(10)),  # one generator for the batch
        batch_latents(pipe, [seeded(s) for s in (10, 10, 10)]),
    ):  # one seed for every picture
        with pytest.raises(ExerciseFailed, match="picture"):
            check_batch_latents(wrong, pipe, NUM_STEPS)


def test_batch_latents_must_be_scaled_by_init_noise_sigma(
    pipe: StableDiffusionPipeline,
) -> None:
    """With a scheduler whose init_noise_sigma is 1 a forgotten scaling once passed; Euler's shows it."""
    seeds = [seeded(s) for s in (10, 11, 12)]
    bare = batch_latents(pipe, seeds) / euler_init_noise_sigma(pipe, NUM_STEPS)
    with pytest.raises(
        ExerciseFailed,
        match="picture 0 is the bare noise: multiply it by the scheduler's "
        "init_noise_sigma",
    ):
        check_batch_latents(bare, pipe, NUM_STEPS)
    with pytest.raises(
        ExerciseFailed, match="before set_timesteps: call set_timesteps"
    ):
        check_batch_latents(
            batch_latents(pipe, [seeded(s) for s in (10, 11, 12)], None),
            pipe,
            NUM_STEPS,
        )


# ex-06-guidance-rescale -------------------------------------------------------------------------------------------


def rescaling(
    rescale: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor],
) -> Callable:
    """A ``denoise_rescaled`` whose guided prediction goes through ``rescale(guided, noise_pred_text, phi)``."""

    @torch.no_grad()
    def denoise_rescaled(
        unet,
        scheduler,
        *,
        latents,
        timesteps,
        prompt_embeds,
        negative_prompt_embeds,
        guidance_scale,
        guidance_rescale,
    ):
        embeds = torch.cat([negative_prompt_embeds, prompt_embeds])
        for t in timesteps:
            model_input = scheduler.scale_model_input(torch.cat([latents] * 2), t)
            uncond, text = unet(
                model_input, t, encoder_hidden_states=embeds
            ).sample.chunk(2)
            guided = uncond + guidance_scale * (text - uncond)
            latents = scheduler.step(
                rescale(guided, text, guidance_rescale), t, latents
            ).prev_sample
        return latents

    return denoise_rescaled


def std(x: torch.Tensor, per_picture: bool = True) -> torch.Tensor:
    return x.std(dim=list(range(1, x.ndim)), keepdim=True) if per_picture else x.std()


def reference_rescale(guided, text, phi):
    return phi * guided * std(text) / std(guided) + (1 - phi) * guided


WRONG_RESCALES = {
    "not rescaled": lambda guided, text, phi: guided,
    "std over the whole batch": lambda guided, text, phi: (
        phi * guided * std(text, False) / std(guided, False) + (1 - phi) * guided
    ),
    "rescaled, not mixed": lambda guided, text, phi: guided * std(text) / std(guided),
    "mixed the other way": lambda guided, text, phi: (
        (1 - phi) * guided * std(text) / std(guided) + phi * guided
    ),
}


def test_guidance_rescale_passes_the_reference(pipe: StableDiffusionPipeline) -> None:
    assert check_guidance_rescale(rescaling(reference_rescale), pipe)


@pytest.mark.parametrize("wrong", list(WRONG_RESCALES))
def test_guidance_rescale_fails_wrong_answers(
    pipe: StableDiffusionPipeline, wrong: str
) -> None:
    with pytest.raises(ExerciseFailed, match="guidance_rescale"):
        check_guidance_rescale(rescaling(WRONG_RESCALES[wrong]), pipe)


# ex-06-negative-at-one --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def negative_effect_at_7_5(pipe: StableDiffusionPipeline) -> int:
    pictures = [
        generate(
            pipe,
            PROMPT,
            negative_prompt=negative,
            num_inference_steps=NEGATIVE_STEPS,
            generator=seeded(0),
            progress=False,
        )[0]
        for negative in (None, "yellow")
    ]
    return max_pixel_diff(pictures[:1], pictures[1:])


def test_negative_at_one(
    pipe: StableDiffusionPipeline, negative_effect_at_7_5: int
) -> None:
    assert negative_effect_at_7_5 > 10, (
        "the negative prompt must change the picture for the check to mean anything"
    )
    assert check_negative_at_one({1: 0, 7.5: negative_effect_at_7_5}, EXPLANATION, pipe)
    wrong_answers = [
        ({1: 0, 7.5: 0}, EXPLANATION),  # forgot to pass the negative prompt
        (
            {1: negative_effect_at_7_5, 7.5: negative_effect_at_7_5},
            EXPLANATION,
        ),  # compared at 7.5 twice
        (
            {1: 0, 7.5: negative_effect_at_7_5 // 2},
            EXPLANATION,
        ),  # another seed or step count
        ({1: 0, 7.5: negative_effect_at_7_5}, "it is zero"),  # no explanation
        ({0: 0, 7.5: negative_effect_at_7_5}, EXPLANATION),  # the wrong scales
    ]
    for effect, explanation in wrong_answers:
        with pytest.raises(ExerciseFailed):
            check_negative_at_one(effect, explanation, pipe)


# ex-06-resume -----------------------------------------------------------------------------------------------------


def resumed(pipe: StableDiffusionPipeline, skip: int = 0, restart: bool = False):
    """The picture drawn in two ``denoise`` calls; the flags make the mistakes a learner might make."""
    scheduler = make_scheduler("DPM-Solver++", pipe.scheduler.config)
    scheduler.set_timesteps(NUM_STEPS)
    prompt_embeds, negative_prompt_embeds = encode_prompt(
        pipe.tokenizer, pipe.text_encoder, PROMPT
    )
    size = pipe.unet.config.sample_size
    start = make_latents(
        1,
        4,
        size,
        size,
        init_noise_sigma=scheduler.init_noise_sigma,
        generator=seeded(0),
    )
    run = functools.partial(
        denoise,
        pipe.unet,
        scheduler,
        prompt_embeds=prompt_embeds,
        negative_prompt_embeds=negative_prompt_embeds,
        progress=False,
    )  # the same prompt and scheduler for both calls
    paused = run(latents=start, timesteps=scheduler.timesteps[:10])
    finished = run(
        latents=start if restart else paused,
        timesteps=scheduler.timesteps[10 + skip :],
    )
    return decode_latents(pipe.vae, finished)[0]


def test_resume(pipe: StableDiffusionPipeline) -> None:
    assert check_resume(resumed(pipe), pipe)
    # Resetting the scheduler between the calls forgets DPM-Solver++'s history, but moves no pixel by more than 1 of 255
    # on this model: not a mistake the pictures can show, so it is not among the wrong answers.
    for mistake in ({"skip": 1}, {"restart": True}):
        with pytest.raises(ExerciseFailed, match="differs"):
            check_resume(resumed(pipe, **mistake), pipe)
    with pytest.raises(ExerciseFailed, match="PIL image"):
        check_resume(torch.zeros(3, 64, 64), pipe)


# Every check -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda pipe: check_batch_latents(..., pipe, NUM_STEPS),
        lambda pipe: check_guidance_rescale(..., pipe),
        lambda pipe: check_negative_at_one(..., EXPLANATION, pipe),
        lambda pipe: check_negative_at_one({1: 0, 7.5: 1}, ..., pipe),
        lambda pipe: check_resume(..., pipe),
    ],
)
def test_placeholders_are_not_done(pipe: StableDiffusionPipeline, call, capsys) -> None:
    assert call(pipe).passed is False
    assert "NOT DONE" in capsys.readouterr().out
