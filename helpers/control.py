"""ControlNet by hand: outline pictures that condition tiny-shapes-sd's ControlNet, and the denoising loop with the
ControlNet's residuals added to the UNet's blocks.

Chapter 9 builds ``controlnet_denoise`` step by step and proves it equal to ``StableDiffusionControlNetPipeline``.
A condition picture is the outline of a shape, white on black, like the Canny edge maps that SD v1.5's
``lllyasviel/control_v11p_sd15_canny`` is trained on.
"""

from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import ControlNetModel, UNet2DConditionModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from PIL import Image
from tqdm.auto import tqdm

from . import shapes
from .inpaint import guided_noise_pred

# pixels: the window of the dilation minus the erosion that draws the edge
OUTLINE_WIDTH = 3


def outline(
    shape: str, where: shapes.Layout, size: int = shapes.IMAGE_SIZE
) -> np.ndarray:
    """The edge of a shape drawn at ``where``, in [0, 1]: (size, size). Dilation minus erosion of its coverage, so
    the line lies across the shape's border, as an edge detector's would."""
    coverage = torch.from_numpy(
        shapes.shape_mask(shape, where.center, where.width, where.angle, size)
    )[None, None]
    dilated = F.max_pool2d(
        coverage, OUTLINE_WIDTH, stride=1, padding=OUTLINE_WIDTH // 2
    )
    eroded = -F.max_pool2d(
        -coverage, OUTLINE_WIDTH, stride=1, padding=OUTLINE_WIDTH // 2
    )
    return (dilated - eroded)[0, 0].clamp(0, 1).numpy()


def outline_picture(
    shape: str, where: shapes.Layout, size: int = shapes.IMAGE_SIZE
) -> Image.Image:
    """The condition picture: a shape's outline, white on black, RGB."""
    edge = (outline(shape, where, size) * 255).round().astype(np.uint8)
    return Image.fromarray(np.stack([edge] * 3, axis=-1))


def random_outline(shape: str, seed: int) -> tuple[Image.Image, shapes.Layout]:
    """The outline of ``shape`` at a size, place and rotation drawn from ``seed``, and that layout."""
    where = shapes.layout(shapes.Scene(shape, "white", "black"), random.Random(seed))
    return outline_picture(shape, where), where


def controlnet_residuals(
    controlnet: ControlNetModel,
    latent_model_input: torch.Tensor,
    t: torch.Tensor,
    *,
    embeds: torch.Tensor,
    condition: torch.Tensor,
    conditioning_scale: float,
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """The ControlNet's residuals for one step: one per UNet skip connection (down
    blocks) and one for the middle block, each already times ``conditioning_scale``."""
    return controlnet(
        latent_model_input,
        t,
        encoder_hidden_states=embeds,
        controlnet_cond=condition,
        conditioning_scale=conditioning_scale,
        return_dict=False,
    )


@torch.no_grad()
def controlnet_denoise(
    unet: UNet2DConditionModel,
    controlnet: ControlNetModel,
    scheduler: SchedulerMixin,
    *,
    latents: torch.Tensor,
    timesteps: torch.Tensor,
    prompt_embeds: torch.Tensor,
    negative_prompt_embeds: torch.Tensor,
    condition: torch.Tensor,
    guidance_scale: float = 7.5,
    conditioning_scale: float = 1.0,
    progress: bool = True,
) -> torch.Tensor:
    """The text-to-image loop with a ControlNet: at every step the ControlNet sees the
    noisy latents, the prompt and the condition picture ``condition`` (B, 3, H, W) in
    [0, 1], and its residuals are added to the UNet's.

    Both halves of classifier-free guidance get the condition, as the library's pipeline
    does by default. As in ``denoise``, the caller sets the scheduler's timesteps and
    passes the ones to run.
    """
    if guidance_scale <= 1:
        raise ValueError("this loop always guides: use guidance_scale > 1")
    embeds = torch.cat([negative_prompt_embeds, prompt_embeds])  # (2B, 77, d)
    condition = torch.cat([condition] * 2)  # (2B, 3, H, W)
    for t in tqdm(timesteps, desc="denoising", disable=not progress):
        latent_model_input = scheduler.scale_model_input(torch.cat([latents] * 2), t)
        down_residuals, mid_residual = controlnet_residuals(
            controlnet,
            latent_model_input,
            t,
            embeds=embeds,
            condition=condition,
            conditioning_scale=conditioning_scale,
        )
        noise_pred = guided_noise_pred(
            unet,
            latent_model_input,
            t,
            embeds,
            guidance_scale,
            down_block_additional_residuals=down_residuals,
            mid_block_additional_residual=mid_residual,
        )
        latents = scheduler.step(noise_pred, t, latents).prev_sample
    return latents
