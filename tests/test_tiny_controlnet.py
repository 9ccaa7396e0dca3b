"""The ControlNet's training stage: its data, its loss, a short run that saves float16 weights and resumes."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from diffusers import ControlNetModel, StableDiffusionPipeline
from safetensors.torch import load_file

from helpers import shapes
from helpers.tiny.controlnet import (
    ControlledUNet,
    ControlNetConfig,
    condition_batch,
    controlnet_prompts,
    make_controlnet,
    outline_dataset,
    train_controlnet,
    training_caption,
)


def test_training_captions_name_another_shape_sometimes() -> None:
    scene, rng = shapes.Scene("star", "red", "blue"), random.Random(0)
    captions = [training_caption(scene, rng, 0.1, 0.3) for _ in range(3000)]
    empty, other = (
        captions.count("") / 3000,
        sum("star" not in c and c != "" for c in captions) / 3000,
    )
    assert 0.07 < empty < 0.13 and 0.22 < other < 0.32
    assert all(
        "red" in c and "blue" in c for c in captions if c
    )  # the colours always follow the picture


def test_outlines_lie_where_the_pictures_shapes_are(
    tiny_pipe: StableDiffusionPipeline,
) -> None:
    data = outline_dataset(16, seed=5, vae=tiny_pipe.vae)
    assert (
        data.latent_dists.shape == (16, 2, 4, 8, 8)
        and data.conditions.dtype == torch.uint8
    )
    rng = random.Random(5)
    scenes = [shapes.random_scene(rng) for _ in range(16)]
    seeds = [rng.randrange(2**31) for _ in range(16)]
    for i in range(16):
        picture = np.asarray(
            shapes.render(scenes[i], seed=seeds[i]), np.float32
        )  # (H, W, 3)
        gradient = sum(
            np.abs(g).sum(axis=2) for g in np.gradient(picture, axis=(0, 1))
        )  # (H, W)
        edge = data.conditions[i, 0].numpy() > 127
        # The picture changes from shape to background across the outline, and only smoothly elsewhere.
        assert gradient[edge].mean() > 2 * gradient[~edge].mean()
    batch = condition_batch(data.conditions, torch.tensor([0, 3]))
    assert (
        batch.shape == (2, 3, 64, 64)
        and batch.max() == 1
        and batch.dtype == torch.float32
    )


def test_a_fresh_controlnet_leaves_the_unet_alone(
    tiny_pipe: StableDiffusionPipeline,
) -> None:
    controlnet = make_controlnet(tiny_pipe.unet, ControlNetConfig())
    latents, t = torch.randn(2, 4, 8, 8), torch.tensor([10, 900])
    embeds = torch.randn(2, 77, tiny_pipe.unet.config.cross_attention_dim)
    condition = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        controlled = ControlledUNet(tiny_pipe.unet, controlnet, condition)(
            latents, t, embeds
        ).sample
        plain = tiny_pipe.unet(latents, t, encoder_hidden_states=embeds).sample
    torch.testing.assert_close(controlled, plain)


def test_prompts_mostly_name_another_shape_than_the_outline() -> None:
    prompts = controlnet_prompts(32)
    assert (
        len(prompts) == 32
        and sum(scene.shape != drawn for scene, drawn, _ in prompts) == 24
    )
    assert all(scene.size is None and scene.position is None for scene, _, _ in prompts)


def test_short_run_saves_half_precision_and_resumes(tmp_path: Path) -> None:
    config = replace(
        ControlNetConfig().quick(),
        steps=4,
        batch=4,
        dataset_size=32,
        checkpoint_every=2,
        workdir=tmp_path / "work",
        out_dir=tmp_path / "controlnet",
        device="cpu",
    )
    _, losses = train_controlnet(config)
    assert len(losses) == 4 and all(np.isfinite(losses))
    weights = load_file(config.out_dir / "diffusion_pytorch_model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float16}
    assert sum(p.stat().st_size for p in config.out_dir.iterdir()) < 10e6
    assert (
        next(ControlNetModel.from_pretrained(config.out_dir).parameters()).dtype
        == torch.float32
    )
    _, more = train_controlnet(
        replace(config, steps=6)
    )  # resumes at step 4 from the checkpoint
    assert len(more) == 6 and more[:4] == losses
