"""Image to image: the text-to-image loop started part-way, from a noised picture.

Chapter 7 defines these functions in its own cells, from the verbs of
``helpers.pipeline``, and proves them equal to diffusers'
``StableDiffusionImg2ImgPipeline`` for the same seed and strength;
``tests/test_cell_sync_pipeline.py`` keeps the cells and this module the same.
``strength`` says how much noise goes on the picture: 1.0 drowns it (plain text to
image), 0.2 only blurs the finest detail, so the last fifth of the steps run.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers import AutoencoderKL, SchedulerMixin, StableDiffusionPipeline
from PIL import Image

from .images import ImageLike
from .latents import decode_latents, encode_image
from .pipeline import denoise, encode_prompt


def start_step(num_inference_steps: int, strength: float) -> int:
    """Index of the first of ``num_inference_steps`` steps that img2img runs.

    ``int(num_inference_steps * strength)`` steps run (rounded down), as diffusers'
    ``get_timesteps`` says, so strength 0.6 of 25 steps runs the last 15.
    """
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must lie in [0, 1], got {strength}")
    steps_run = min(int(num_inference_steps * strength), num_inference_steps)
    return num_inference_steps - steps_run


def get_timesteps(
    scheduler: SchedulerMixin, *, num_inference_steps: int, strength: float
) -> torch.Tensor:
    """The timesteps img2img runs: the last of those that ``set_timesteps`` chose.

    Call it after ``scheduler.set_timesteps(num_inference_steps)``. It tells schedulers
    that look their noise level up by step index (Euler, DPM-Solver++) where the run
    begins, as diffusers' ``get_timesteps`` does.
    """
    if scheduler.num_inference_steps != num_inference_steps:
        raise ValueError(f"call scheduler.set_timesteps({num_inference_steps}) first")
    first = start_step(num_inference_steps, strength)
    if first == num_inference_steps:
        raise ValueError(f"strength {strength} runs no step: raise it or the steps")
    begin = first * scheduler.order  # second-order schedulers list each timestep twice
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    return scheduler.timesteps[begin:]


@torch.no_grad()
def make_start_latents(
    vae: AutoencoderKL,
    scheduler: SchedulerMixin,
    image: ImageLike | torch.Tensor,
    *,
    timestep: torch.Tensor,
    batch_size: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A picture -> its latents (batch_size, 4, h, w), noised to ``timestep``.

    The generator draws the VAE's latent sample first, then the noise: the pipeline's
    order, so the same seed gives the same picture. The noise is drawn on the
    generator's device, as diffusers' ``randn_tensor`` draws it.
    """
    latents = encode_image(vae, image, generator)  # (N, 4, h, w) for N pictures
    if batch_size % len(latents):
        raise ValueError(f"{len(latents)} pictures cannot be shared among {batch_size}")
    latents = latents.repeat(batch_size // len(latents), 1, 1, 1)  # one per prompt
    draw_device = generator.device if generator is not None else latents.device
    noise = torch.randn(
        latents.shape, generator=generator, device=draw_device, dtype=latents.dtype
    )
    timesteps = timestep.repeat(batch_size)  # (B,): the same noise level for each
    return scheduler.add_noise(latents, noise.to(latents.device), timesteps)


def img2img(
    pipe: StableDiffusionPipeline,
    image: ImageLike | torch.Tensor,
    prompt: str | Sequence[str],
    strength: float = 0.8,
    negative_prompt: str | Sequence[str] | None = None,
    num_inference_steps: int = 50,
    guidance_scale: float = 7.5,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> list[Image.Image]:
    """A picture and prompts -> one new picture per prompt, each step once.

    The defaults are ``StableDiffusionImg2ImgPipeline``'s.
    """
    # 1. Encode the prompt: the conditional and the unconditional embeddings.
    prompt_embeds, negative_prompt_embeds = encode_prompt(
        tokenizer=pipe.tokenizer,
        text_encoder=pipe.text_encoder,
        prompt=prompt,
        negative_prompt=negative_prompt,
    )
    # 2. Set the timesteps, and keep the last ones: as many as strength asks for.
    pipe.scheduler.set_timesteps(num_inference_steps, device=pipe.unet.device)
    timesteps = get_timesteps(
        pipe.scheduler, num_inference_steps=num_inference_steps, strength=strength
    )
    # 3. Make the latents: the picture's, noised to the first timestep that runs.
    latents = make_start_latents(
        pipe.vae,
        pipe.scheduler,
        image,
        timestep=timesteps[0],
        batch_size=len(prompt_embeds),
        generator=generator,
    )
    # 4. Denoise: one guided UNet call and one scheduler step per timestep left.
    latents = denoise(
        pipe.unet,
        pipe.scheduler,
        latents=latents,
        timesteps=timesteps,
        prompt_embeds=prompt_embeds,
        negative_prompt_embeds=negative_prompt_embeds,
        guidance_scale=guidance_scale,
        generator=generator,
        progress=progress,
    )
    # 5. Decode: the latents to pictures.
    return decode_latents(pipe.vae, latents)
