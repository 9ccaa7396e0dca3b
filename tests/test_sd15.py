"""SD v1.5 without its weights: its shipped configs, its parts on the meta device, the SD-sized pipeline."""

from __future__ import annotations

import pytest
import torch
from diffusers import PNDMScheduler

from helpers.memory import weights_bytes
from helpers.sd15 import sd15_config, sd15_on_meta

# SD v1.5's published sizes: UNet 859.52M, VAE 83.65M, CLIP ViT-L/14 text tower 123.06M parameters.
SD15_PARAMETERS = {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}


def test_sd15_config_is_sd_v15s_own_with_overrides():
    unet = sd15_config("unet", layers_per_block=1)
    assert (
        unet["block_out_channels"] == [320, 640, 1280, 1280]
        and unet["cross_attention_dim"] == 768
    )
    assert unet["layers_per_block"] == 1
    assert sd15_config("vae")["scaling_factor"] == 0.18215
    assert sd15_config("text_encoder")["max_position_embeddings"] == 77
    known = "scheduler, text_encoder, unet, unet_inpainting, vae"
    with pytest.raises(
        ValueError, match=f"unknown part 'clip': expected one of {known}"
    ):
        sd15_config("clip")


def test_the_scheduler_config_is_sd_v15s_pndm():
    scheduler = PNDMScheduler.from_config(sd15_config("scheduler"))
    assert scheduler.config.beta_schedule == "scaled_linear"
    assert (scheduler.config.beta_start, scheduler.config.beta_end) == (0.00085, 0.012)
    assert scheduler.config.steps_offset == 1 and scheduler.config.skip_prk_steps


@pytest.mark.parametrize("part", list(SD15_PARAMETERS))
def test_sd15_on_meta_has_the_real_sizes_and_no_storage(part: str) -> None:
    model = sd15_on_meta(part)
    assert all(p.is_meta for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) == SD15_PARAMETERS[part]
    assert weights_bytes(model, torch.float16) == 2 * SD15_PARAMETERS[part]
    assert weights_bytes(model) == 4 * SD15_PARAMETERS[part]  # as built: float32
