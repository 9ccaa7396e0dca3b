"""Stable Diffusion's text-to-image loop in verbs: encode the prompt, set the timesteps,
make the latents, denoise, decode.

Chapter 6 defines these functions in its own cells, where a learner can change them, and
proves them equal to ``StableDiffusionPipeline``; ``tests/test_cell_sync_pipeline.py``
keeps those cells and this module the same, character for character. Later chapters
import them from here. Names mirror diffusers' own (``prompt_embeds``, ``timesteps``,
``latent_model_input``, ``noise_pred``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import torch
from diffusers import SchedulerMixin, StableDiffusionPipeline
from PIL import Image
from tqdm.auto import tqdm
from transformers import CLIPTextModel, CLIPTokenizer

from .latents import decode_latents, vae_scale_factor

StepCallback = Callable[[int, torch.Tensor, object], None]
Generators = torch.Generator | list[torch.Generator] | None


@torch.no_grad()
def encode_prompt(
    tokenizer: CLIPTokenizer,
    text_encoder: CLIPTextModel,
    prompt: str | Sequence[str],
    negative_prompt: str | Sequence[str] | None = None,
    num_images_per_prompt: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts -> (prompt_embeds, negative_prompt_embeds), each (B * images, 77, d).

    The negative prompt defaults to ``""``: its embedding is the unconditional half of
    classifier-free guidance. ``num_images_per_prompt`` repeats each row.
    """
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    negatives = "" if negative_prompt is None else negative_prompt
    negatives = [negatives] * len(prompts) if isinstance(negatives, str) else negatives
    if len(negatives) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts, {len(negatives)} negative prompts")

    def embed(texts: Sequence[str]) -> torch.Tensor:
        # (B, 77)
        ids = tokenizer(
            list(texts),
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        embeds = text_encoder(ids.to(text_encoder.device)).last_hidden_state
        return embeds.repeat_interleave(num_images_per_prompt, dim=0)  # (B * n, 77, d)

    return embed(prompts), embed(negatives)


def make_latents(
    batch_size: int,
    num_channels: int,
    height: int,
    width: int,
    *,
    init_noise_sigma: float | torch.Tensor,
    generator: Generators = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Starting noise (B, C, height, width) in latent pixels, times init_noise_sigma.

    ``init_noise_sigma`` is the spread the scheduler's first step expects: 1 for the
    schedulers on x_t (DDIM, PNDM, DPM-Solver++); for those on x_0 + sigma * noise
    (Euler, LMS) it follows from the first timestep's sigma, so pass the scheduler's
    value once its timesteps are set. Like diffusers' ``randn_tensor``, the noise is
    drawn on the generator's device (a CPU generator gives the same picture on any
    GPU); a list of generators draws one picture each.
    """
    shape = (batch_size, num_channels, height, width)
    if isinstance(generator, list):
        if len(generator) != batch_size:
            raise ValueError(f"{len(generator)} generators for a batch of {batch_size}")
        one = (1, *shape[1:])
        draws = [
            torch.randn(one, generator=g, device=g.device, dtype=dtype)
            for g in generator
        ]
        noise = torch.cat(draws)
    else:
        draw_device = generator.device if generator is not None else device
        noise = torch.randn(shape, generator=generator, device=draw_device, dtype=dtype)
    return noise.to(device) * init_noise_sigma


@torch.no_grad()
def denoise(
    unet: torch.nn.Module,
    scheduler: SchedulerMixin,
    *,
    latents: torch.Tensor,
    timesteps: torch.Tensor,
    prompt_embeds: torch.Tensor,
    negative_prompt_embeds: torch.Tensor,
    guidance_scale: float = 7.5,
    generator: Generators = None,
    callback: StepCallback | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """One guided UNet call and one scheduler step for each of ``timesteps``.

    The caller sets the scheduler's timesteps and passes the ones to run: all of them
    for text to image, the last few for image to image. ``callback(i, t, step_output)``
    sees each step's output (``prev_sample``, mostly ``pred_original_sample`` too).
    """
    # At scale 1 the guidance formula gives noise_pred_text: the unconditional half is
    # skipped, as diffusers skips it.
    do_classifier_free_guidance = guidance_scale > 1
    if do_classifier_free_guidance:  # (2B, 77, d): one UNet call predicts both halves
        prompt_embeds = torch.cat([negative_prompt_embeds, prompt_embeds])
    # Stochastic schedulers (DDPM, Euler ancestral) draw fresh noise at each step.
    takes_generator = "generator" in inspect.signature(scheduler.step).parameters
    step_kwargs = {"generator": generator} if takes_generator else {}
    for i, t in enumerate(tqdm(timesteps, desc="denoising", disable=not progress)):
        latent_model_input = latents
        if do_classifier_free_guidance:
            latent_model_input = torch.cat([latents] * 2)  # (2B, 4, h, w)
        latent_model_input = scheduler.scale_model_input(latent_model_input, t)
        noise_pred = unet(
            latent_model_input, t, encoder_hidden_states=prompt_embeds
        ).sample
        if do_classifier_free_guidance:
            noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
            noise_pred = noise_pred_uncond + guidance_scale * (
                noise_pred_text - noise_pred_uncond
            )
        output = scheduler.step(noise_pred, t, latents, **step_kwargs)
        latents = output.prev_sample
        if callback is not None:
            callback(i, t, output)
    return latents


def generate(
    pipe: StableDiffusionPipeline,
    prompt: str | Sequence[str],
    negative_prompt: str | Sequence[str] | None = None,
    num_inference_steps: int = 25,
    guidance_scale: float = 7.5,
    generator: Generators = None,
    num_images_per_prompt: int = 1,
    height: int | None = None,
    width: int | None = None,
    scheduler: SchedulerMixin | None = None,
    callback: StepCallback | None = None,
    progress: bool = True,
) -> list[Image.Image]:
    """Text to pictures with the verbs and the parts of ``pipe``, each step once.

    ``scheduler`` replaces ``pipe.scheduler`` for this call only; ``callback`` goes to
    ``denoise``. Height and width default to the UNet's native size.
    """
    scheduler = pipe.scheduler if scheduler is None else scheduler
    device, factor = pipe.unet.device, vae_scale_factor(pipe.vae)
    height = height or pipe.unet.config.sample_size * factor
    width = width or pipe.unet.config.sample_size * factor
    if height % factor or width % factor:
        raise ValueError(f"{height}x{width}: sides must be multiples of {factor}")

    # 1. Encode the prompt: the conditional and the unconditional embeddings.
    prompt_embeds, negative_prompt_embeds = encode_prompt(
        tokenizer=pipe.tokenizer,
        text_encoder=pipe.text_encoder,
        prompt=prompt,
        negative_prompt=negative_prompt,
        num_images_per_prompt=num_images_per_prompt,
    )
    # 2. Set the timesteps: the noise levels the loop visits, noisiest first.
    scheduler.set_timesteps(num_inference_steps, device=device)
    timesteps = scheduler.timesteps
    # 3. Make the latents: noise with the spread that the first timestep expects.
    latents = make_latents(
        batch_size=len(prompt_embeds),
        num_channels=pipe.unet.config.in_channels,
        height=height // factor,
        width=width // factor,
        init_noise_sigma=scheduler.init_noise_sigma,
        generator=generator,
        device=device,
        dtype=prompt_embeds.dtype,
    )
    # 4. Denoise: one guided UNet call and one scheduler step per timestep.
    latents = denoise(
        pipe.unet,
        scheduler,
        latents=latents,
        timesteps=timesteps,
        prompt_embeds=prompt_embeds,
        negative_prompt_embeds=negative_prompt_embeds,
        guidance_scale=guidance_scale,
        generator=generator,
        callback=callback,
        progress=progress,
    )
    # 5. Decode: the latents to pictures.
    return decode_latents(pipe.vae, latents)
