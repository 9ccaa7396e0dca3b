"""Checks for Chapter 6 (the pipeline rebuilt by hand).

Expectations come from the library: each check runs ``StableDiffusionPipeline`` on the
parts of the pipeline passed in, with the exercise's inputs, and compares pictures.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

from ..compare import max_pixel_diff
from ..latents import decode_latents
from ..pipeline import encode_prompt, make_latents
from ..reproducible import seeded
from ..schedulers import make_scheduler
from . import (
    Verdict,
    expect,
    expect_keys,
    expect_picture,
    expect_same_picture,
    expect_tensor,
    quiet_copy,
    run_check,
    run_function_check,
    run_open_question,
)

BATCH_SEEDS = (10, 11, 12)
PROMPT, NUM_STEPS = "a yellow star on a black background", 25  # the chapter's
RESCALE_PROMPTS = [
    "a yellow star on a black background",
    "a red circle on a blue background",
]
RESCALE_STEPS, RESCALE_GUIDANCE, RESCALE_PHI = 10, 7.5, 0.7
NEGATIVE_PROMPT, NEGATIVE_SCALES, NEGATIVE_STEPS = "yellow", (1, 7.5), 10
GPU_TOLERANCE = 2  # of 255: on a GPU each of two differences may round apart by 1


def _library(
    pipe: StableDiffusionPipeline, scheduler_name: str | None = None
) -> StableDiffusionPipeline:
    """``pipe``'s parts in a fresh library pipeline with a fresh scheduler (the pipe's class unless named)."""
    scheduler = (
        make_scheduler(scheduler_name, pipe.scheduler.config)
        if scheduler_name
        else type(pipe.scheduler).from_config(pipe.scheduler.config)
    )
    return quiet_copy(pipe, StableDiffusionPipeline, scheduler=scheduler)


def euler_init_noise_sigma(
    pipe: StableDiffusionPipeline, num_inference_steps: int | None
) -> float:
    """``init_noise_sigma`` of an Euler scheduler on the pipeline's schedule, set to ``num_inference_steps`` steps
    (None: not set); it depends on the steps, so reading it before ``set_timesteps`` gives another number."""
    euler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    if num_inference_steps is not None:
        euler.set_timesteps(num_inference_steps)
    return float(euler.init_noise_sigma)


def check_batch_latents(
    batch_latents: Any, pipe: StableDiffusionPipeline, num_inference_steps: int
) -> Verdict:
    """Three starting latents at the native size for an Euler scheduler set to ``num_inference_steps`` steps: picture
    k drawn alone from seed 10 + k, times the scheduler's ``init_noise_sigma`` (far from 1 for Euler)."""

    def test(answer: Any) -> None:
        size = pipe.unet.config.sample_size
        shape = (1, pipe.unet.config.in_channels, size, size)
        expect_tensor(answer, (len(BATCH_SEEDS), *shape[1:]), "batch_latents")
        sigma, sigma_unset = (
            euler_init_noise_sigma(pipe, steps) for steps in (num_inference_steps, None)
        )
        for k, seed in enumerate(BATCH_SEEDS):
            noise = torch.randn(shape, generator=seeded(seed))
            got = answer[k : k + 1].float().cpu()

            def starts_from(scale: float, got=got, noise=noise) -> bool:
                # The tolerance allows for float16 on a GPU.
                return torch.allclose(got, noise * scale, rtol=1e-3, atol=1e-3 * scale)

            expect(
                not starts_from(1.0),
                f"batch_latents: picture {k} is the bare noise: multiply it by the "
                f"scheduler's init_noise_sigma ({sigma:.4g} here)",
            )
            expect(
                not starts_from(sigma_unset),
                "batch_latents: init_noise_sigma was read before set_timesteps: "
                f"call set_timesteps({num_inference_steps}) first",
            )
            expect(
                starts_from(sigma),
                f"batch_latents: picture {k} does not start from seed {seed}'s noise times "
                f"{sigma:.4g} (one generator per picture)",
            )

    return run_check("ex-06-batch-latents", batch_latents, test)


def check_guidance_rescale(
    denoise_rescaled: Any, pipe: StableDiffusionPipeline
) -> Verdict:
    """``denoise_rescaled`` gives the library's pictures for ``guidance_rescale=0.7``, two prompts, DPM-Solver++."""

    def test(fn: Any) -> None:

        def generators() -> list[torch.Generator]:
            return [seeded(seed) for seed in range(len(RESCALE_PROMPTS))]

        expected = _library(pipe, "DPM-Solver++")(
            RESCALE_PROMPTS,
            num_inference_steps=RESCALE_STEPS,
            guidance_scale=RESCALE_GUIDANCE,
            guidance_rescale=RESCALE_PHI,
            generator=generators(),
        ).images

        scheduler = make_scheduler("DPM-Solver++", pipe.scheduler.config)
        scheduler.set_timesteps(RESCALE_STEPS, device=pipe.device)
        prompt_embeds, negative_prompt_embeds = encode_prompt(
            tokenizer=pipe.tokenizer,
            text_encoder=pipe.text_encoder,
            prompt=RESCALE_PROMPTS,
        )
        size = pipe.unet.config.sample_size
        latents = make_latents(
            batch_size=len(RESCALE_PROMPTS),
            num_channels=pipe.unet.config.in_channels,
            height=size,
            width=size,
            init_noise_sigma=scheduler.init_noise_sigma,
            generator=generators(),
            device=pipe.device,
            dtype=prompt_embeds.dtype,
        )
        result = fn(
            pipe.unet,
            scheduler,
            latents=latents,
            timesteps=scheduler.timesteps,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            guidance_scale=RESCALE_GUIDANCE,
            guidance_rescale=RESCALE_PHI,
        )
        expect_tensor(result, tuple(latents.shape), "denoise_rescaled(...)")
        difference = max_pixel_diff(decode_latents(pipe.vae, result), expected)
        expect(
            difference <= 1,
            f"denoise_rescaled's pictures differ from StableDiffusionPipeline(..., "
            f"guidance_rescale={RESCALE_PHI}) by up to {difference} of 255: rescale each "
            "picture's guided prediction to the std of its own text prediction (over every "
            "dimension but the batch), then mix phi * rescaled + (1 - phi) * guided",
        )

    return run_function_check(
        "ex-06-guidance-rescale", denoise_rescaled, test, name="denoise_rescaled"
    )


def check_negative_at_one(
    negative_effect: Any, explanation: Any, pipe: StableDiffusionPipeline
) -> Verdict:
    """{1: 0, 7.5: the library's largest pixel difference} for the negative prompt "yellow"; an explanation."""

    def test(effect: Any) -> None:
        expect_keys(effect, NEGATIVE_SCALES, "negative_effect")
        expect(
            effect[1] == 0,
            f"negative_effect[1] is {effect[1]!r}, but at guidance 1 the pictures are the same: "
            "draw both with seed 0 and compare them with max_pixel_diff",
        )
        library = _library(pipe)
        pictures = [
            library(
                PROMPT,
                negative_prompt=negative,
                num_inference_steps=NEGATIVE_STEPS,
                guidance_scale=7.5,
                generator=seeded(0),
            ).images[0]
            for negative in (None, NEGATIVE_PROMPT)
        ]
        want = max_pixel_diff(pictures[:1], pictures[1:])
        expect(
            isinstance(effect[7.5], int) and abs(effect[7.5] - want) <= GPU_TOLERANCE,
            f"negative_effect[7.5] is {effect[7.5]!r}, expected {want}: seed 0, {NEGATIVE_STEPS} steps of "
            f"{type(pipe.scheduler).__name__}, without and with negative_prompt={NEGATIVE_PROMPT!r}",
        )

    return run_open_question(
        "ex-06-negative-at-one", negative_effect, explanation, test
    )


def check_resume(resumed_picture: Any, pipe: StableDiffusionPipeline) -> Verdict:
    """The chapter's picture (PROMPT, seed 0, NUM_STEPS steps of the pipe's scheduler) drawn in two calls."""

    def test(answer: Any) -> None:
        expect_picture(answer, "resumed_picture")
        expected = _library(pipe)(
            PROMPT, num_inference_steps=NUM_STEPS, generator=seeded(0)
        ).images[0]
        expect_same_picture(
            answer,
            expected,
            "resumed_picture",
            "the library's",
            "set the timesteps once, and let the second call go on with the same scheduler "
            "(its history), the same generator and the latents where the first call stopped",
        )

    return run_check("ex-06-resume", resumed_picture, test)
