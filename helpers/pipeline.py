"""Stable Diffusion's text-to-image loop in four verbs: encode the prompt, make latents, denoise, decode.

Chapter 6 builds these step by step and proves them equal to ``StableDiffusionPipeline``; later chapters import
them from here. Names mirror diffusers' own (``prompt_embeds``, ``latent_model_input``, ``noise_pred``).
"""

from __future__ import annotations

import inspect
from typing import Callable, Sequence

import torch
from diffusers import StableDiffusionPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from PIL import Image
from tqdm.auto import tqdm
from transformers import CLIPTextModel, CLIPTokenizer

from .images import vae_scale_factor
from .latents import decode_latents

StepCallback = Callable[[int, torch.Tensor, object], None]


@torch.no_grad()
def encode_prompt(tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel, prompt: str | Sequence[str],
                  negative_prompt: str | Sequence[str] | None = None,
                  num_images_per_prompt: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts -> (prompt_embeds, negative_prompt_embeds), each (B * num_images_per_prompt, 77, d).

    The negative prompt defaults to ``""``: its embedding is the unconditional half of classifier-free guidance.
    """
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    negatives = negative_prompt if negative_prompt is not None else ""
    negatives = [negatives] * len(prompts) if isinstance(negatives, str) else list(negatives)
    if len(negatives) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(negatives)} negative prompts")

    def embed(texts: list[str]) -> torch.Tensor:
        ids = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids  # (B, 77)
        embeds = text_encoder(ids.to(text_encoder.device)).last_hidden_state  # (B, 77, d)
        return embeds.repeat_interleave(num_images_per_prompt, dim=0)

    return embed(prompts), embed(negatives)


def make_latents(batch_size: int, num_channels: int, height: int, width: int, scheduler: SchedulerMixin,
                 generator: torch.Generator | list[torch.Generator] | None = None, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Starting noise (B, C, h, w), drawn as diffusers' ``randn_tensor`` draws it, times ``init_noise_sigma``.

    The noise is drawn on the generator's device (so a CPU generator gives the same picture on any GPU); a list of
    generators draws one sample each, so each picture of a batch is reproducible on its own. Call
    ``scheduler.set_timesteps`` first, as the library does: sigma-based schedulers scale by the largest sigma visited.
    """
    shape = (batch_size, num_channels, height, width)
    if isinstance(generator, list):
        if len(generator) != batch_size:
            raise ValueError(f"{len(generator)} generators for a batch of {batch_size}")
        noise = torch.cat([torch.randn((1, *shape[1:]), generator=g, device=g.device, dtype=dtype) for g in generator])
    else:
        noise_device = generator.device if generator is not None else device
        noise = torch.randn(shape, generator=generator, device=noise_device, dtype=dtype)
    return noise.to(device) * scheduler.init_noise_sigma


@torch.no_grad()
def denoise(unet: torch.nn.Module, scheduler: SchedulerMixin, latents: torch.Tensor, prompt_embeds: torch.Tensor,
            negative_prompt_embeds: torch.Tensor, num_inference_steps: int = 25, guidance_scale: float = 7.5,
            generator: torch.Generator | None = None, start_step: int = 0, callback: StepCallback | None = None,
            progress: bool = True) -> torch.Tensor:
    """Run the scheduler's steps from ``start_step`` (img2img starts late), with classifier-free guidance.

    ``callback(i, t, step_output)`` sees each step's output (``prev_sample``, often ``pred_original_sample``).
    """
    scheduler.set_timesteps(num_inference_steps, device=latents.device)
    timesteps = scheduler.timesteps[start_step * scheduler.order :]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start_step * scheduler.order)
    guided = guidance_scale > 1
    embeds = torch.cat([negative_prompt_embeds, prompt_embeds]) if guided else prompt_embeds  # (2B, 77, d)
    # Stochastic schedulers (DDPM, Euler ancestral) draw fresh noise at each step, from the same generator.
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    for i, t in enumerate(tqdm(timesteps, desc="denoising", disable=not progress)):
        latent_model_input = torch.cat([latents] * 2) if guided else latents
        latent_model_input = scheduler.scale_model_input(latent_model_input, t)
        noise_pred = unet(latent_model_input, t, encoder_hidden_states=embeds).sample
        if guided:
            noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
            noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)
        output = scheduler.step(noise_pred, t, latents, **step_kwargs)
        latents = output.prev_sample
        if callback is not None:
            callback(i, t, output)
    return latents


def generate(pipe: StableDiffusionPipeline, prompt: str | Sequence[str], negative_prompt: str | None = None,
             num_inference_steps: int = 25, guidance_scale: float = 7.5, generator: torch.Generator | None = None,
             num_images_per_prompt: int = 1, height: int | None = None, width: int | None = None,
             scheduler: SchedulerMixin | None = None, callback: StepCallback | None = None,
             progress: bool = True) -> list[Image.Image]:
    """Text to pictures with the four verbs and the parts of ``pipe`` (tokenizer, text encoder, UNet, VAE, scheduler).

    ``scheduler`` replaces ``pipe.scheduler`` for this call only; ``callback`` is passed on to ``denoise``.
    """
    scheduler = pipe.scheduler if scheduler is None else scheduler
    factor = vae_scale_factor(pipe.vae)
    height, width = height or pipe.unet.config.sample_size * factor, width or pipe.unet.config.sample_size * factor
    if height % factor or width % factor:
        raise ValueError(f"height and width must be multiples of the VAE's scale factor {factor}, got {height}x{width}")
    prompt_embeds, negative_prompt_embeds = encode_prompt(pipe.tokenizer, pipe.text_encoder, prompt, negative_prompt,
                                                          num_images_per_prompt)
    # Timesteps first: for sigma-based schedulers (LMS, Euler) init_noise_sigma is the largest sigma *visited*.
    scheduler.set_timesteps(num_inference_steps, device=pipe.unet.device)
    latents = make_latents(len(prompt_embeds), pipe.unet.config.in_channels, height // factor, width // factor,
                           scheduler, generator, pipe.unet.device, prompt_embeds.dtype)
    latents = denoise(pipe.unet, scheduler, latents, prompt_embeds, negative_prompt_embeds, num_inference_steps,
                      guidance_scale, generator, callback=callback, progress=progress)
    return decode_latents(pipe.vae, latents)
