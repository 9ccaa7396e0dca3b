"""The ControlNet loop by hand gives ``StableDiffusionControlNetPipeline``'s pictures; outlines lie on the shape."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from diffusers import (
    ControlNetModel,
    StableDiffusionControlNetPipeline,
    StableDiffusionPipeline,
)

from helpers import shapes
from helpers.checks import quiet_copy
from helpers.compare import max_pixel_diff
from helpers.control import controlnet_denoise, outline, random_outline
from helpers.latents import decode_latents
from helpers.pipeline import encode_prompt, make_latents

PROMPT = "a red circle on a blue background"


@pytest.fixture(scope="module")
def controlnet(tiny_pipe: StableDiffusionPipeline) -> ControlNetModel:
    """A ControlNet of the tiny UNet whose zero convolutions are not zero, so its residuals count."""
    torch.manual_seed(0)
    model = ControlNetModel.from_unet(
        tiny_pipe.unet, conditioning_embedding_out_channels=(16, 32, 64, 64)
    )
    for conv in [
        *model.controlnet_down_blocks,
        model.controlnet_mid_block,
        model.controlnet_cond_embedding.conv_out,
    ]:
        torch.nn.init.normal_(conv.weight, std=0.05)
    return model.eval()


def test_outline_lies_on_the_shapes_border() -> None:
    where = shapes.Layout((0.5, 0.5), 0.5, 10.0)
    edge = outline("square", where)
    coverage = shapes.shape_mask("square", where.center, where.width, where.angle)
    assert edge.shape == (64, 64) and edge.max() == 1
    border = (coverage > 0.05) & (coverage < 0.95)
    assert edge[border].min() > 0 and edge[coverage == 0].sum() < edge.sum() / 2
    assert edge[coverage == 1].max() < 1 or edge[coverage == 1].mean() < 0.5


def test_random_outline_uses_the_layout_a_render_uses() -> None:
    picture, where = random_outline("star", seed=5)
    assert where == shapes.layout(
        shapes.Scene("star", "white", "black"), random.Random(5)
    )
    assert picture.size == (64, 64) and np.asarray(picture).max() == 255


@pytest.mark.parametrize("conditioning_scale", [0.5, 1.0])
def test_controlnet_loop_equals_the_pipeline(
    tiny_pipe: StableDiffusionPipeline,
    controlnet: ControlNetModel,
    conditioning_scale: float,
) -> None:
    condition_picture, _ = random_outline("triangle", seed=1)
    library = quiet_copy(
        tiny_pipe, StableDiffusionControlNetPipeline, controlnet=controlnet
    )
    expected = library(
        PROMPT,
        image=condition_picture,
        num_inference_steps=8,
        controlnet_conditioning_scale=conditioning_scale,
        generator=torch.Generator().manual_seed(3),
    ).images
    prompt_embeds, negative_prompt_embeds = encode_prompt(
        tiny_pipe.tokenizer, tiny_pipe.text_encoder, PROMPT
    )
    tiny_pipe.scheduler.set_timesteps(8)
    latents = make_latents(
        1,
        4,
        8,
        8,
        init_noise_sigma=tiny_pipe.scheduler.init_noise_sigma,
        generator=torch.Generator().manual_seed(3),
    )
    condition = (
        torch.from_numpy(np.asarray(condition_picture)).permute(2, 0, 1)[None].float()
        / 255
    )
    latents = controlnet_denoise(
        tiny_pipe.unet,
        controlnet,
        tiny_pipe.scheduler,
        latents=latents,
        timesteps=tiny_pipe.scheduler.timesteps,
        prompt_embeds=prompt_embeds,
        negative_prompt_embeds=negative_prompt_embeds,
        condition=condition,
        conditioning_scale=conditioning_scale,
        progress=False,
    )
    assert max_pixel_diff(decode_latents(tiny_pipe.vae, latents), expected) <= 1
