"""The helpers hold for the real Stable Diffusion v1.5's shapes, not only tiny-shapes-sd's.

The models are the parts of ``helpers.sd15.sd15_sized_pipeline``: SD v1.5's own configs with random weights and
fewer layers/channels; what the helpers rely on is kept: 4 VAE blocks (scale factor 8), 4 latent channels, a UNet
with cross_attention_dim 768, a CLIP text encoder 768 wide with 77 positions.
"""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPTokenizer

from helpers import (
    decode_latents,
    encode_image,
    load_sample_image,
    preprocess,
    vae_scale_factor,
)


def test_the_sd_sized_vae_keeps_sds_layout(sd_vae):
    assert vae_scale_factor(sd_vae) == 8
    assert (
        sd_vae.config.latent_channels == 4 and len(sd_vae.config.down_block_types) == 4
    )
    assert sd_vae.config.scaling_factor == 0.18215


@pytest.mark.parametrize(("width", "height"), [(512, 512), (512, 480)])
def test_pictures_go_through_an_sd_sized_vae(sd_vae, width, height):
    picture = load_sample_image("photo").resize(
        (width + 5, height + 3)
    )  # preprocess crops to a multiple of 8
    pixels = preprocess(picture, sd_vae)
    assert pixels.shape == (1, 3, height, width)
    latents = encode_image(sd_vae, pixels, generator=torch.Generator().manual_seed(0))
    assert latents.shape == (1, 4, height // 8, width // 8)
    (back,) = decode_latents(sd_vae, latents)
    assert back.size == (width, height) and back.mode == "RGB"


def test_sd_sized_text_embeddings_have_77_positions_of_768(sd_text_encoder, model_dir):
    tokenizer = CLIPTokenizer.from_pretrained(model_dir / "tokenizer")
    ids = tokenizer(
        "a photo of an astronaut riding a horse",
        padding="max_length",
        max_length=77,
        return_tensors="pt",
    ).input_ids  # (1, 77)
    with torch.no_grad():
        embeddings = sd_text_encoder(ids).last_hidden_state
    assert embeddings.shape == (1, 77, 768)


def test_the_sd_sized_unet_predicts_noise_of_the_latents_shape(sd_unet):
    latents = torch.randn(1, 4, 64, 64)  # a 512x512 picture's latents
    embeddings = torch.randn(1, 77, 768)  # what SD v1.5's text encoder gives
    with torch.no_grad():
        noise_pred = sd_unet(
            latents, torch.tensor(999), encoder_hidden_states=embeddings
        ).sample
    assert noise_pred.shape == latents.shape
    assert torch.isfinite(noise_pred).all()
