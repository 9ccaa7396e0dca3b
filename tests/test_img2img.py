"""Image to image from the pipeline's verbs gives ``StableDiffusionImg2ImgPipeline``'s pictures, step for step."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import (
    DPMSolverMultistepScheduler,
    PNDMScheduler,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
)
from reference_runs import (
    img2img_library_and_ours,
    record_set_timesteps,
    seeded_img2img,
)

from helpers import encode_image, load_sample_image
from helpers.checks import quiet_copy
from helpers.compare import max_pixel_diff
from helpers.img2img import get_timesteps, img2img, make_start_latents, start_step
from helpers.sd15 import sd15_config

PROMPT = "a red star on a blue background"
STEPS = 10


@pytest.mark.parametrize(
    "scheduler_class", [PNDMScheduler, DPMSolverMultistepScheduler]
)
def test_start_step_and_get_timesteps_are_diffusers_get_timesteps(
    scheduler_class: type,
) -> None:
    ours, theirs = (
        scheduler_class.from_config(sd15_config("scheduler")) for _ in range(2)
    )
    for steps in (10, 25, 50):
        for strength in (0.1, 0.33, 0.5, 0.62, 0.75, 1.0):
            ours.set_timesteps(steps)
            theirs.set_timesteps(steps)
            timesteps, runs = StableDiffusionImg2ImgPipeline.get_timesteps(
                SimpleNamespace(scheduler=theirs), steps, strength, "cpu"
            )
            assert start_step(steps, strength) == steps - runs
            assert torch.equal(
                get_timesteps(ours, num_inference_steps=steps, strength=strength),
                timesteps,
            )
            assert getattr(ours, "begin_index", None) == getattr(
                theirs, "begin_index", None
            )


@pytest.mark.parametrize("strength", [-0.1, 1.5])
def test_start_step_rejects_strength_outside_0_1(strength: float) -> None:
    with pytest.raises(ValueError, match="strength"):
        start_step(25, strength)


def test_get_timesteps_needs_the_timesteps_set_for_the_same_count() -> None:
    scheduler = PNDMScheduler.from_config(sd15_config("scheduler"))
    with pytest.raises(ValueError, match="set_timesteps"):
        get_timesteps(scheduler, num_inference_steps=10, strength=0.5)
    scheduler.set_timesteps(20)
    with pytest.raises(ValueError, match=r"set_timesteps\(10\)"):
        get_timesteps(scheduler, num_inference_steps=10, strength=0.5)


def test_get_timesteps_refuses_to_run_no_step() -> None:
    scheduler = PNDMScheduler.from_config(sd15_config("scheduler"))
    scheduler.set_timesteps(10)
    with pytest.raises(ValueError, match="runs no step"):
        get_timesteps(scheduler, num_inference_steps=10, strength=0.05)


def test_make_start_latents_is_the_forward_process(sd_vae) -> None:
    """The picture's latent sample first, then the noise, from one generator; then add_noise at the timestep."""
    scheduler = PNDMScheduler.from_config(sd15_config("scheduler"))
    scheduler.set_timesteps(25)
    timestep = get_timesteps(scheduler, num_inference_steps=25, strength=0.6)[0]
    pixels = (
        torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    )
    noisy = make_start_latents(
        sd_vae,
        scheduler,
        pixels,
        timestep=timestep,
        batch_size=2,
        generator=torch.Generator().manual_seed(2),
    )
    generator = torch.Generator().manual_seed(2)
    latents = encode_image(sd_vae, pixels, generator).repeat(2, 1, 1, 1)  # (2, 4, 4, 4)
    noise = torch.randn(latents.shape, generator=generator)
    alpha_prod_t = scheduler.alphas_cumprod[int(timestep)]
    torch.testing.assert_close(
        noisy, alpha_prod_t.sqrt() * latents + (1 - alpha_prod_t).sqrt() * noise
    )


def test_img2img_sets_the_timesteps_once(
    tiny_pipe: StableDiffusionPipeline, monkeypatch
) -> None:
    scheduler = DPMSolverMultistepScheduler.from_config(tiny_pipe.scheduler.config)
    pipe = quiet_copy(tiny_pipe, scheduler=scheduler)
    calls = record_set_timesteps(monkeypatch, scheduler)
    img2img(
        pipe,
        load_sample_image(PROMPT),
        PROMPT,
        strength=0.5,
        num_inference_steps=4,
        progress=False,
    )
    assert calls == [(4,)]


def library_and_ours(
    pipe: StableDiffusionPipeline, strength: float
) -> tuple[list, list]:
    """The library's img2img pictures and ours, for the same seed, strength and steps."""
    image = load_sample_image("a red circle on a blue background")
    return img2img_library_and_ours(pipe, image, PROMPT, strength, STEPS)


@pytest.mark.parametrize("strength", [0.3, 0.75])
def test_img2img_equals_the_pipeline(
    tiny_pipe: StableDiffusionPipeline, strength: float
) -> None:
    expected, ours = library_and_ours(tiny_pipe, strength)
    assert len(ours) == 1 and ours[0].size == expected[0].size
    assert max_pixel_diff(ours, expected) <= 1


def test_img2img_equals_the_pipeline_with_dpm_solver(
    tiny_pipe: StableDiffusionPipeline,
) -> None:
    """A scheduler that looks its noise level up by step index (``set_begin_index``) agrees too."""
    scheduler = DPMSolverMultistepScheduler.from_config(tiny_pipe.scheduler.config)
    pipe = quiet_copy(tiny_pipe, scheduler=scheduler)
    expected, ours = library_and_ours(pipe, 0.5)
    assert max_pixel_diff(ours, expected) <= 1


def test_strength_changes_the_picture(tiny_pipe: StableDiffusionPipeline) -> None:
    """Low strength stays nearer the start picture than high strength does."""
    image = load_sample_image("a red circle on a blue background")

    def distance(strength: float) -> float:
        edited = seeded_img2img(tiny_pipe, image, PROMPT, strength, STEPS, seed=4)[0]
        return float(
            np.abs(
                np.asarray(edited, np.float32) - np.asarray(image, np.float32)
            ).mean()
        )

    assert distance(0.2) < distance(1.0)


def test_img2img_one_picture_many_prompts(tiny_pipe: StableDiffusionPipeline) -> None:
    image = load_sample_image("a red circle on a blue background")
    pictures = img2img(
        tiny_pipe,
        image,
        [PROMPT, "a red circle on a yellow background"],
        strength=0.5,
        num_inference_steps=4,
        generator=torch.Generator().manual_seed(5),
        progress=False,
    )
    assert len(pictures) == 2 and pictures[0].size == image.size
    two_pictures = torch.zeros(2, 3, *image.size)
    with pytest.raises(ValueError, match="cannot be shared"):
        img2img(
            tiny_pipe,
            two_pictures,
            [PROMPT] * 3,
            strength=0.5,
            num_inference_steps=4,
            progress=False,
        )
