"""Chapter 7's training loop (tiny-shapes-sd's own ``train_unet``) learns: a short run's loss falls, with caption
dropout, and a finished run resumes from its checkpoint without training again."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, StableDiffusionPipeline

import helpers.tiny.train as train_module
from helpers.sd15 import sd15_config
from helpers.tiny.config import TinyConfig
from helpers.tiny.train import (
    CaptionLoss,
    add_training_noise,
    diffusion_loss,
    embed_captions,
    train_unet,
)

STEPS, WINDOW = 60, 15


def short_config(workdir: Path) -> TinyConfig:
    """A small UNet on a small dataset: a few seconds of training."""
    return dataclasses.replace(
        TinyConfig(),
        unet_channels=(32, 64, 64),
        unet_dataset_size=256,
        unet_batch=16,
        workdir=workdir,
    )


@pytest.fixture(scope="module")
def short_run(
    tiny_pipe: StableDiffusionPipeline, tmp_path_factory: pytest.TempPathFactory
) -> dict:
    """One short training run, recording the captions the loop embeds."""
    captions: list[str] = []
    embed = train_module.embed_captions

    def recording_embed(
        text_encoder: torch.nn.Module, tokenizer: object, batch: list[str]
    ) -> torch.Tensor:
        captions.extend(batch)
        return embed(text_encoder, tokenizer, batch)

    config = short_config(tmp_path_factory.mktemp("train"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_module, "embed_captions", recording_embed)
        unet, losses = train_unet(
            config,
            tiny_pipe.vae,
            tiny_pipe.text_encoder,
            tiny_pipe.tokenizer,
            steps=STEPS,
            name="test-unet",
        )
    return {"config": config, "unet": unet, "losses": losses, "captions": captions}


def test_loss_falls(short_run: dict) -> None:
    losses = short_run["losses"]
    assert len(losses) == STEPS and all(np.isfinite(losses))
    first, last = np.mean(losses[:WINDOW]), np.mean(losses[-WINDOW:])
    assert last < 0.8 * first, (
        f"the loss did not fall: {first:.3f} over the first steps, {last:.3f} over the last"
    )


def test_caption_dropout(short_run: dict) -> None:
    captions, config = short_run["captions"], short_run["config"]
    assert len(captions) == STEPS * config.unet_batch
    share = captions.count("") / len(captions)
    assert abs(share - config.uncond_prob) < 0.04, (
        f"{share:.1%} empty captions, expected {config.uncond_prob:.0%}"
    )
    assert all("background" in c or " on " in c for c in captions if c), (
        "a caption that is not a scene's caption"
    )


def test_finished_run_resumes_without_training(
    short_run: dict, tiny_pipe: StableDiffusionPipeline
) -> None:
    unet, losses = train_unet(
        short_run["config"],
        tiny_pipe.vae,
        tiny_pipe.text_encoder,
        tiny_pipe.tokenizer,
        steps=STEPS,
        name="test-unet",
    )
    assert losses == short_run["losses"]
    for resumed, trained in zip(unet.parameters(), short_run["unet"].parameters()):
        assert torch.equal(resumed, trained)


def test_caption_loss_is_plain_at_one_and_calibrated_below(
    tiny_pipe: StableDiffusionPipeline,
) -> None:
    unet, scheduler = (
        tiny_pipe.unet,
        DDPMScheduler.from_config(sd15_config("scheduler")),
    )
    captions = ["a red circle on a blue background", ""]
    embeds = embed_captions(tiny_pipe.text_encoder, tiny_pipe.tokenizer, captions)
    empty = embeds[1:]  # (1, 77, d)
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))

    def seeded(loss: CaptionLoss) -> torch.Tensor:
        torch.manual_seed(0)
        with torch.no_grad():
            return loss(unet, latents, captions, embeds)

    plain = seeded(CaptionLoss(scheduler, None, 1.0))
    torch.manual_seed(0)
    with torch.no_grad():
        assert torch.equal(plain, diffusion_loss(unet, scheduler, latents, embeds))

    ratio = 0.25
    calibrated = seeded(CaptionLoss(scheduler, empty, ratio))
    # by hand: the captioned row aims a quarter of the way from the empty caption's
    # prediction to the noise, the empty caption's row at the noise
    torch.manual_seed(0)
    noisy, noise, timesteps = add_training_noise(scheduler, latents)
    with torch.no_grad():
        uncond = unet(noisy, timesteps, encoder_hidden_states=empty.expand(2, -1, -1))
        prediction = unet(noisy, timesteps, encoder_hidden_states=embeds).sample
    aimed = uncond.sample[0] + ratio * (noise[0] - uncond.sample[0])
    target = torch.stack([aimed, noise[1]])
    assert torch.allclose(calibrated, F.mse_loss(prediction, target))
    assert not torch.allclose(calibrated, plain)
