"""The hand-built pipeline (``helpers.pipeline``) gives StableDiffusionPipeline's pictures, at both model sizes.

tiny-shapes-sd checks several schedulers and options; random weights of SD v1.5's shapes (768-d text embeddings over
77 tokens, 4 latent channels, scale factor 8) at 512x512 check that nothing in the verbs holds only for tiny shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from reference_runs import record_set_timesteps

from helpers import vae_scale_factor
from helpers.checks import quiet_copy
from helpers.compare import max_pixel_diff
from helpers.pipeline import denoise, encode_prompt, generate, make_latents
from helpers.schedulers import make_scheduler

PROMPT = "a red circle on a blue background"


def hand_and_library(
    pipe: StableDiffusionPipeline,
    scheduler_name: str | None = None,
    seed: int = 0,
    **kwargs,
) -> tuple[list, list]:
    """The same request through ``generate`` and through the library pipeline, with a fresh scheduler each."""

    def scheduler():
        return (
            make_scheduler(scheduler_name, pipe.scheduler.config)
            if scheduler_name
            else pipe.scheduler
        )

    hand = generate(
        pipe,
        PROMPT,
        generator=torch.Generator().manual_seed(seed),
        scheduler=scheduler(),
        progress=False,
        **kwargs,
    )
    library = quiet_copy(pipe, scheduler=scheduler())(
        PROMPT, generator=torch.Generator().manual_seed(seed), **kwargs
    ).images
    return hand, library


@pytest.mark.parametrize(
    "scheduler_name", ["PNDM", "DDIM", "Euler ancestral", "DPM-Solver++"]
)
def test_tiny_hand_pipeline_equals_library(
    tiny_pipe: StableDiffusionPipeline, scheduler_name: str
) -> None:
    hand, library = hand_and_library(tiny_pipe, scheduler_name, num_inference_steps=12)
    assert max_pixel_diff(hand, library) <= 1


@pytest.mark.parametrize(
    "options",
    [
        {"negative_prompt": "yellow", "num_images_per_prompt": 2},
        {"guidance_scale": 1.0},
        {"guidance_scale": 12.0, "num_inference_steps": 5},
    ],
)
def test_tiny_hand_pipeline_equals_library_with_options(
    tiny_pipe: StableDiffusionPipeline, options: dict
) -> None:
    hand, library = hand_and_library(
        tiny_pipe, "Euler ancestral", seed=3, **{"num_inference_steps": 8, **options}
    )
    assert len(hand) == len(library) == options.get("num_images_per_prompt", 1)
    assert max_pixel_diff(hand, library) <= 1


def test_seeds_change_the_picture(tiny_pipe: StableDiffusionPipeline) -> None:
    """Guards the equality tests above: different inputs must give different pictures."""
    first, _ = hand_and_library(tiny_pipe, "DDIM", seed=0, num_inference_steps=5)
    second, _ = hand_and_library(tiny_pipe, "DDIM", seed=1, num_inference_steps=5)
    assert max_pixel_diff(first, second) > 1


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_verbs_match_the_library_parts(tiny_pipe: StableDiffusionPipeline) -> None:
    pipe = tiny_pipe
    ours = encode_prompt(
        tokenizer=pipe.tokenizer,
        text_encoder=pipe.text_encoder,
        prompt=[PROMPT, "a star"],
        negative_prompt=["yellow", ""],
        num_images_per_prompt=2,
    )
    library = pipe.encode_prompt(
        [PROMPT, "a star"], pipe.device, 2, True, negative_prompt=["yellow", ""]
    )
    assert all(torch.equal(a, b) for a, b in zip(ours, library))

    size, factor = pipe.unet.config.sample_size, vae_scale_factor(pipe.vae)
    sigma = pipe.scheduler.init_noise_sigma
    latents = make_latents(
        2, 4, size, size, init_noise_sigma=sigma, generator=seeded(7)
    )
    assert torch.equal(
        latents,
        pipe.prepare_latents(
            2, 4, size * factor, size * factor, torch.float32, "cpu", seeded(7)
        ),
    )
    one_each = make_latents(
        2, 4, size, size, init_noise_sigma=sigma, generator=[seeded(7), seeded(8)]
    )
    assert torch.equal(one_each[:1], latents[:1]) and not torch.equal(
        one_each[1:], latents[1:]
    )


def test_make_latents_scales_by_the_sigma_it_is_given() -> None:
    """The spread comes from the caller, not from a scheduler's hidden state."""
    unit = make_latents(1, 4, 8, 8, init_noise_sigma=1.0, generator=seeded(3))
    assert torch.equal(
        make_latents(1, 4, 8, 8, init_noise_sigma=14.6, generator=seeded(3)),
        unit * 14.6,
    )


def test_generate_sets_the_timesteps_once(
    tiny_pipe: StableDiffusionPipeline, monkeypatch
) -> None:
    scheduler = make_scheduler("Euler", tiny_pipe.scheduler.config)
    calls = record_set_timesteps(monkeypatch, scheduler)
    generate(
        tiny_pipe, PROMPT, num_inference_steps=3, scheduler=scheduler, progress=False
    )
    assert calls == [(3,)]


def test_denoise_runs_the_timesteps_it_is_given(
    tiny_pipe: StableDiffusionPipeline,
) -> None:
    """``denoise`` sets nothing: it runs exactly the timesteps passed, in order."""
    pipe, visited = tiny_pipe, []
    scheduler = make_scheduler("DDIM", pipe.scheduler.config)
    scheduler.set_timesteps(6)
    prompt_embeds, negative_prompt_embeds = encode_prompt(
        pipe.tokenizer, pipe.text_encoder, PROMPT
    )
    size = pipe.unet.config.sample_size
    denoise(
        pipe.unet,
        scheduler,
        latents=make_latents(
            1, 4, size, size, init_noise_sigma=1.0, generator=seeded(0)
        ),
        timesteps=scheduler.timesteps[2:],
        prompt_embeds=prompt_embeds,
        negative_prompt_embeds=negative_prompt_embeds,
        callback=lambda i, t, _: visited.append(int(t)),
        progress=False,
    )
    assert visited == scheduler.timesteps[2:].tolist() and len(scheduler.timesteps) == 6


def test_generate_refuses_sizes_the_vae_cannot_make(
    tiny_pipe: StableDiffusionPipeline,
) -> None:
    factor = vae_scale_factor(tiny_pipe.vae)
    with pytest.raises(ValueError, match="multiples"):
        generate(
            tiny_pipe,
            PROMPT,
            height=factor * 4 + 1,
            num_inference_steps=1,
            progress=False,
        )


def test_sd15_sized_parts_have_sd15_interfaces(
    sd15_pipe: StableDiffusionPipeline,
) -> None:
    pipe = sd15_pipe
    prompt_embeds, negative_prompt_embeds = encode_prompt(
        pipe.tokenizer, pipe.text_encoder, PROMPT
    )
    assert prompt_embeds.shape == negative_prompt_embeds.shape == (1, 77, 768)
    assert (
        pipe.unet.config.cross_attention_dim == 768
        and pipe.unet.config.in_channels == 4
    )
    assert vae_scale_factor(pipe.vae) == 8 and pipe.vae.config.latent_channels == 4
    assert pipe.unet.config.sample_size * vae_scale_factor(pipe.vae) == 512


@pytest.mark.parametrize("scheduler_name", ["PNDM", "Euler ancestral"])
def test_sd15_sized_hand_pipeline_equals_library_at_512(
    sd15_pipe: StableDiffusionPipeline, scheduler_name: str
) -> None:
    hand, library = hand_and_library(sd15_pipe, scheduler_name, num_inference_steps=2)
    assert hand[0].size == library[0].size == (512, 512)
    assert (
        np.asarray(hand[0]).std() > 1
    )  # a picture with something in it, not a flat colour that matches trivially
    assert max_pixel_diff(hand, library) <= 1
