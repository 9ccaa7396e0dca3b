"""Image to image: the text-to-image loop started part-way, from a noised picture instead of pure noise.

Chapter 7 builds this from the verbs of ``helpers.pipeline`` and proves it equal to diffusers'
``StableDiffusionImg2ImgPipeline`` for the same seed and strength. ``strength`` says how much noise goes on the
picture: 1.0 drowns it (plain text-to-image), 0.2 only blurs the finest detail, so the last fifth of the steps run.
"""

from __future__ import annotations

from typing import Sequence

import torch
from diffusers import StableDiffusionPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from PIL import Image

from .images import ImageLike
from .latents import decode_latents, encode_image
from .pipeline import denoise, encode_prompt


def start_step(num_inference_steps: int, strength: float) -> int:
    """Index of the first of ``num_inference_steps`` steps that img2img runs, as diffusers' ``get_timesteps`` says.

    ``int(num_inference_steps * strength)`` steps run (rounded down), so strength 0.6 of 25 steps runs the last 15.
    """
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must lie in [0, 1], got {strength}")
    steps_run = min(int(num_inference_steps * strength), num_inference_steps)
    return num_inference_steps - steps_run


def noise_to_strength(scheduler: SchedulerMixin, latents: torch.Tensor, num_inference_steps: int, strength: float,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, int]:
    """Clean picture latents (B, 4, h, w) -> (the same latents noised to the first step's timestep, that step).

    The noise is drawn on the generator's device, as diffusers' ``randn_tensor`` draws it.
    """
    first = start_step(num_inference_steps, strength)
    if first == num_inference_steps:
        raise ValueError(f"strength {strength} of {num_inference_steps} steps runs no step: raise either")
    scheduler.set_timesteps(num_inference_steps, device=latents.device)
    if hasattr(scheduler, "set_begin_index"):  # schedulers with sigmas look the noise level up by step index
        scheduler.set_begin_index(first * scheduler.order)
    timestep = scheduler.timesteps[first * scheduler.order].repeat(len(latents))  # (B,)
    noise_device = generator.device if generator is not None else latents.device
    noise = torch.randn(latents.shape, generator=generator, device=noise_device, dtype=latents.dtype)
    return scheduler.add_noise(latents, noise.to(latents.device), timestep), first


def img2img(pipe: StableDiffusionPipeline, image: ImageLike | torch.Tensor, prompt: str | Sequence[str],
            strength: float = 0.8, negative_prompt: str | Sequence[str] | None = None, num_inference_steps: int = 50,
            guidance_scale: float = 7.5, generator: torch.Generator | None = None,
            progress: bool = True) -> list[Image.Image]:
    """A picture and a prompt -> new pictures, one per prompt; defaults as ``StableDiffusionImg2ImgPipeline``'s.

    The generator draws the VAE's latent sample first, then the noise: the pipeline's order, so the same seed gives
    the same picture.
    """
    prompt_embeds, negative_prompt_embeds = encode_prompt(pipe.tokenizer, pipe.text_encoder, prompt, negative_prompt)
    latents = encode_image(pipe.vae, image, generator).to(prompt_embeds.dtype)  # (1, 4, h, w)
    if len(prompt_embeds) % len(latents):
        raise ValueError(f"{len(latents)} pictures cannot be shared among {len(prompt_embeds)} prompts")
    latents = latents.repeat(len(prompt_embeds) // len(latents), 1, 1, 1)  # one copy per prompt
    latents, first = noise_to_strength(pipe.scheduler, latents, num_inference_steps, strength, generator)
    latents = denoise(pipe.unet, pipe.scheduler, latents, prompt_embeds, negative_prompt_embeds, num_inference_steps,
                      guidance_scale, generator, start_step=first, progress=progress)
    return decode_latents(pipe.vae, latents)
