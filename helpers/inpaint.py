"""Inpainting with a plain 4-channel UNet: redraw the masked part of a picture, keep the rest.

At every step the latents outside the mask are replaced by the picture's own latents, noised to the level the
next step expects, so the model only ever invents the masked part and fits it to what is kept. This is what
``StableDiffusionInpaintPipeline`` does when its UNet has 4 input channels; chapter 9 builds it and proves it equal.
SD v1.5's inpainting model instead feeds the mask and the masked picture's latents to a 9-channel UNet.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import StableDiffusionPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from PIL import Image
from tqdm.auto import tqdm

from .images import ImageLike
from .latents import decode_latents, encode_image, vae_scale_factor
from .pipeline import encode_prompt


def latent_mask(mask_image: Image.Image, factor: int) -> torch.Tensor:
    """A mask picture (white: redraw, black: keep) -> a 0/1 mask on the latent grid (1, 1, H/f, W/f).

    Grey values are rounded to 0 or 1 at one half, then the mask is shrunk by the VAE's factor ``factor`` taking
    the nearest pixel, as the pipeline's ``mask_processor`` and ``prepare_mask_latents`` do.
    """
    pixels = np.asarray(mask_image.convert("L"), dtype=np.float32) / 255  # (H, W)
    binary = torch.from_numpy((pixels >= 0.5).astype(np.float32))[
        None, None
    ]  # (1, 1, H, W)
    return F.interpolate(
        binary, size=(binary.shape[2] // factor, binary.shape[3] // factor)
    )


def guided_noise_pred(
    unet: torch.nn.Module,
    latent_model_input: torch.Tensor,
    t: torch.Tensor,
    embeds: torch.Tensor,
    guidance_scale: float,
    **unet_kwargs: object,
) -> torch.Tensor:
    """The UNet's noise prediction for a doubled batch (unconditional half first), combined by guidance."""
    noise_pred = unet(
        latent_model_input, t, encoder_hidden_states=embeds, **unet_kwargs
    ).sample
    noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
    return noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)


def keep_unmasked(
    scheduler: SchedulerMixin,
    latents: torch.Tensor,
    image_latents: torch.Tensor,
    noise: torch.Tensor,
    mask: torch.Tensor,
    next_t: torch.Tensor | None,
) -> torch.Tensor:
    """Blend after a step: outside the mask the picture's latents, noised to the next
    timestep (clean after the last step, ``next_t`` None); inside it the model's."""
    known = (
        image_latents
        if next_t is None
        else scheduler.add_noise(image_latents, noise, next_t.reshape(1))
    )
    return (1 - mask) * known + mask * latents


@torch.no_grad()
def inpaint(
    pipe: StableDiffusionPipeline,
    image: ImageLike,
    mask_image: Image.Image,
    prompt: str | Sequence[str],
    num_inference_steps: int = 50,
    guidance_scale: float = 7.5,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> list[Image.Image]:
    """Redraw the white part of ``mask_image`` in ``image`` to fit ``prompt``, with the
    library's defaults (strength 1).

    The generator draws the picture's latent sample, then the starting noise, as the
    pipeline does. The pipeline also draws a latent sample of the masked picture, which
    only a 9-channel UNet reads; that draw comes after the noise, so with a scheduler
    that draws no noise of its own (PNDM, DDIM) the pictures are the same.
    """
    if guidance_scale <= 1:
        raise ValueError("this loop always guides: use guidance_scale > 1")
    prompt_embeds, negative_prompt_embeds = encode_prompt(
        pipe.tokenizer, pipe.text_encoder, prompt
    )
    embeds = torch.cat([negative_prompt_embeds, prompt_embeds])  # (2B, 77, d)
    image_latents = encode_image(pipe.vae, image, generator)  # (1, 4, h, w)
    image_latents = image_latents.repeat(
        len(prompt_embeds), 1, 1, 1
    )  # one copy per prompt
    scheduler = pipe.scheduler
    scheduler.set_timesteps(num_inference_steps, device=image_latents.device)
    noise_device = generator.device if generator is not None else image_latents.device
    noise = torch.randn(
        image_latents.shape, generator=generator, device=noise_device
    ).to(image_latents.device)
    latents = noise * scheduler.init_noise_sigma  # strength 1: start from pure noise
    mask = latent_mask(mask_image, vae_scale_factor(pipe.vae)).to(
        latents.device
    )  # (1, 1, h, w)
    timesteps = scheduler.timesteps
    for i, t in enumerate(tqdm(timesteps, desc="inpainting", disable=not progress)):
        latent_model_input = scheduler.scale_model_input(torch.cat([latents] * 2), t)
        noise_pred = guided_noise_pred(
            pipe.unet, latent_model_input, t, embeds, guidance_scale
        )
        latents = scheduler.step(noise_pred, t, latents).prev_sample
        next_t = timesteps[i + 1] if i + 1 < len(timesteps) else None
        latents = keep_unmasked(scheduler, latents, image_latents, noise, mask, next_t)
    return decode_latents(pipe.vae, latents)
