"""Checks for Chapter 6 (the pipeline rebuilt by hand). Expectations come from the library pipeline passed in."""

from __future__ import annotations

from typing import Any

import torch
from diffusers import EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, StableDiffusionPipeline
from PIL import Image

from ..bench import max_pixel_diff
from . import Verdict, expect, quiet_copy, run_check

BATCH_PROMPTS = ["a red circle on a blue background", "a green square on a white background"]
BATCH_SEEDS = (10, 11, 12)
EULER_A_PROMPT = "a big white cross on a black background"


def _expect_tensor(answer: Any, shape: tuple[int, ...], what: str) -> None:
    expect(isinstance(answer, torch.Tensor), f"{what}: expected a torch tensor, got {type(answer).__name__}")
    expect(tuple(answer.shape) == shape, f"{what}: expected shape {shape}, got {tuple(answer.shape)}")


def check_guidance(apply_guidance: Any) -> Verdict:
    """``apply_guidance(uncond, text, scale)`` is classifier-free guidance, for several scales."""
    def test(answer: Any) -> None:
        expect(callable(answer), f"apply_guidance: expected a function, got {type(answer).__name__}")
        uncond, text = torch.randn(2, 2, 4, 8, 8, generator=torch.Generator().manual_seed(6))
        for scale in (0.0, 1.0, 7.5):
            result = answer(uncond, text, scale)
            _expect_tensor(result, tuple(uncond.shape), f"apply_guidance(..., {scale})")
            expected = uncond + scale * (text - uncond)
            expect(torch.allclose(result, expected, atol=1e-5),
                   f"apply_guidance(..., guidance_scale={scale}) is not ε_uncond + s (ε_text - ε_uncond)")

    return run_check("ex-06-guidance", apply_guidance, test)


def check_batch_embeds(embeds: Any, pipe: StableDiffusionPipeline) -> Verdict:
    """(prompt_embeds, negative_prompt_embeds) for two prompts x two pictures, negative prompt "yellow"."""
    def test(answer: Any) -> None:
        expect(isinstance(answer, (tuple, list)) and len(answer) == 2,
               "embeds: expected the pair (prompt_embeds, negative_prompt_embeds) that encode_prompt returns")
        expected = pipe.encode_prompt(BATCH_PROMPTS, pipe.device, 2, True, negative_prompt=["yellow", "yellow"])
        for what, got, want in zip(("prompt_embeds", "negative_prompt_embeds"), answer, expected):
            _expect_tensor(got, tuple(want.shape), f"embeds: {what}")
            expect(torch.allclose(got.float(), want.float(), atol=1e-4),
                   f"embeds: {what} holds other embeddings (check the prompts, the order of the rows and the "
                   "negative prompt)")

    return run_check("ex-06-batch-embeds", embeds, test)


def euler_init_noise_sigma(pipe: StableDiffusionPipeline, num_inference_steps: int | None) -> float:
    """``init_noise_sigma`` of an Euler scheduler on the pipeline's schedule, set to ``num_inference_steps`` steps
    (None: not set), where it is the largest sigma the loop visits."""
    euler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    if num_inference_steps is not None:
        euler.set_timesteps(num_inference_steps)
    return float(euler.init_noise_sigma)


def check_batch_latents(batch_latents: Any, pipe: StableDiffusionPipeline, num_inference_steps: int) -> Verdict:
    """Three starting latents at the native size for an Euler scheduler set to ``num_inference_steps`` steps: picture
    k drawn alone from seed 10 + k, times the scheduler's ``init_noise_sigma`` (far from 1 for Euler)."""
    def test(answer: Any) -> None:
        size = pipe.unet.config.sample_size
        shape = (1, pipe.unet.config.in_channels, size, size)
        _expect_tensor(answer, (len(BATCH_SEEDS), *shape[1:]), "batch_latents")
        sigma, sigma_unset = (euler_init_noise_sigma(pipe, steps) for steps in (num_inference_steps, None))
        for k, seed in enumerate(BATCH_SEEDS):
            noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
            got = answer[k : k + 1].float().cpu()

            def starts_from(scale: float) -> bool:
                return torch.allclose(got, noise * scale, rtol=1e-3, atol=1e-3 * scale)  # float16 on a GPU

            expect(not starts_from(1.0), f"batch_latents: picture {k} is the bare noise: multiply it by the "
                                         f"scheduler's init_noise_sigma ({sigma:.4g} here)")
            expect(not starts_from(sigma_unset), "batch_latents: init_noise_sigma was read before set_timesteps: "
                                                 f"call set_timesteps({num_inference_steps}) first")
            expect(starts_from(sigma), f"batch_latents: picture {k} does not start from seed {seed}'s noise times "
                                       f"{sigma:.4g} (one generator per picture)")

    return run_check("ex-06-batch-latents", batch_latents, test)


def check_euler_ancestral(euler_a_picture: Any, pipe: StableDiffusionPipeline) -> Verdict:
    """The library pipeline's Euler ancestral picture (20 steps, guidance 7.5, seed 1), within 1 of 255."""
    def test(answer: Any) -> None:
        expect(isinstance(answer, Image.Image), f"euler_a_picture: expected a PIL image, got {type(answer).__name__}")
        scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
        expected = quiet_copy(pipe, scheduler=scheduler)(EULER_A_PROMPT, num_inference_steps=20, guidance_scale=7.5,
                           generator=torch.Generator().manual_seed(1)).images[0]
        expect(answer.size == expected.size, f"euler_a_picture: expected {expected.size} pixels, got {answer.size}")
        difference = max_pixel_diff([answer], [expected])
        expect(difference <= 1, f"euler_a_picture differs from the library's by up to {difference} of 255 (check the "
                                "scheduler, steps, seed and prompt)")

    return run_check("ex-06-euler-ancestral", euler_a_picture, test)
