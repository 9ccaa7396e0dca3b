"""Chapter 7's training loop (tiny-shapes-sd's own ``train_unet``) learns: a short run's loss falls, with caption
dropout, and a finished run resumes from its checkpoint without training again; the guidance calibration's loss aims
where its docstring says."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler, StableDiffusionPipeline

import helpers.tiny.train as train_module
from helpers.tiny.config import SD15_SCHEDULER_CONFIG, TinyConfig, make_unet
from helpers.tiny.train import calibrated_guidance_loss, diffusion_loss, embed_captions, train_unet

STEPS, WINDOW = 60, 15


def short_config(workdir: Path) -> TinyConfig:
    """A small UNet on a small dataset: a few seconds of training."""
    return dataclasses.replace(TinyConfig(), unet_channels=(32, 64, 64), dataset_size=256, unet_batch=16,
                               workdir=workdir)


@pytest.fixture(scope="module")
def short_run(tiny_pipe: StableDiffusionPipeline, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One short training run, recording the captions the loop embeds."""
    captions: list[str] = []
    embed = train_module.embed_captions

    def recording_embed(text_encoder: torch.nn.Module, tokenizer: object, batch: list[str]) -> torch.Tensor:
        captions.extend(batch)
        return embed(text_encoder, tokenizer, batch)

    config = short_config(tmp_path_factory.mktemp("train"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_module, "embed_captions", recording_embed)
        unet, losses = train_unet(config, tiny_pipe.vae, tiny_pipe.text_encoder, tiny_pipe.tokenizer, steps=STEPS,
                                  name="test-unet")
    return {"config": config, "unet": unet, "losses": losses, "captions": captions}


def test_loss_falls(short_run: dict) -> None:
    losses = short_run["losses"]
    assert len(losses) == STEPS and all(np.isfinite(losses))
    first, last = np.mean(losses[:WINDOW]), np.mean(losses[-WINDOW:])
    assert last < 0.8 * first, f"the loss did not fall: {first:.3f} over the first steps, {last:.3f} over the last"


def test_caption_dropout(short_run: dict) -> None:
    captions, config = short_run["captions"], short_run["config"]
    assert len(captions) == STEPS * config.unet_batch
    share = captions.count("") / len(captions)
    assert abs(share - config.uncond_prob) < 0.04, f"{share:.1%} empty captions, expected {config.uncond_prob:.0%}"
    assert all("background" in c or " on " in c for c in captions if c), "a caption that is not a scene's caption"


def test_finished_run_resumes_without_training(short_run: dict, tiny_pipe: StableDiffusionPipeline) -> None:
    unet, losses = train_unet(short_run["config"], tiny_pipe.vae, tiny_pipe.text_encoder, tiny_pipe.tokenizer,
                              steps=STEPS, name="test-unet")
    assert losses == short_run["losses"]
    for resumed, trained in zip(unet.parameters(), short_run["unet"].parameters()):
        assert torch.equal(resumed, trained)


@pytest.fixture(scope="module")
def loss_inputs(tiny_pipe: StableDiffusionPipeline) -> dict:
    """A small random UNet, latents and caption embeddings for comparing the two losses."""
    torch.manual_seed(0)
    unet = make_unet(short_config(Path("unused")))
    captions = ["a red circle on a blue background", "", "a small green star in the top left corner on black", ""]
    return {"unet": unet, "noise_scheduler": DDPMScheduler.from_config(SD15_SCHEDULER_CONFIG),
            "latents": torch.randn(4, 4, 8, 8),
            "text_embeddings": embed_captions(tiny_pipe.text_encoder, tiny_pipe.tokenizer, captions),
            "empty_embedding": embed_captions(tiny_pipe.text_encoder, tiny_pipe.tokenizer, [""])}


def seeded_loss(loss_fn, seed: int = 1, **kwargs) -> float:
    torch.manual_seed(seed)
    with torch.no_grad():
        return loss_fn(**kwargs).item()


@pytest.mark.parametrize("captioned, ratio", [([False] * 4, 0.4), ([True] * 4, 1.0)])
def test_calibrated_loss_is_the_plain_loss_where_it_aims_at_the_noise(loss_inputs: dict, captioned: list[bool],
                                                                      ratio: float) -> None:
    # Rows without a caption, or ratio 1, aim at the noise itself: the plain loss, for the same noise and timesteps.
    plain = seeded_loss(diffusion_loss, **{k: v for k, v in loss_inputs.items() if k != "empty_embedding"})
    calibrated = seeded_loss(calibrated_guidance_loss, captioned=torch.tensor(captioned), ratio=ratio, **loss_inputs)
    assert calibrated == pytest.approx(plain, rel=1e-6)


def test_calibrated_loss_aims_captioned_rows_between_the_unconditional_prediction_and_the_noise(
        loss_inputs: dict) -> None:
    # With the empty caption in every row and ratio 0, the target is the prediction itself: the loss is zero.
    empty_rows = {**loss_inputs, "text_embeddings": loss_inputs["empty_embedding"].expand(4, -1, -1)}
    captioned = torch.ones(4, dtype=torch.bool)
    at_the_prediction = seeded_loss(calibrated_guidance_loss, captioned=captioned, ratio=0.0, **empty_rows)
    assert at_the_prediction == pytest.approx(0, abs=1e-12)
    partway = seeded_loss(calibrated_guidance_loss, captioned=captioned, ratio=0.4, **empty_rows)
    all_the_way = seeded_loss(calibrated_guidance_loss, captioned=captioned, ratio=1.0, **empty_rows)
    assert partway == pytest.approx(0.4**2 * all_the_way, rel=1e-5)  # the target moves linearly with the ratio
