"""Pictures to latents and back: encode_image and decode_latents through a small random-weight AutoencoderKL."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL

from helpers import decode_latents, encode_image, load_sample_image, preprocess


@pytest.fixture(scope="module")
def picture():
    return load_sample_image(
        "a small yellow star in the top right corner on a purple background", size=48
    )


def test_encode_image_gives_scaled_latents_of_an_eighth_the_size(sd_vae, picture):
    latents = encode_image(sd_vae, picture, sample=False)
    assert latents.shape == (1, 4, 6, 6)
    pixels = preprocess(picture, sd_vae)
    with torch.no_grad():
        mean = sd_vae.encode(pixels).latent_dist.mode()  # (1, 4, 6, 6)
    assert torch.allclose(latents, mean * sd_vae.config.scaling_factor)


def test_encode_image_takes_a_batch_of_pixels(sd_vae):
    pixels = torch.rand(3, 3, 16, 24) * 2 - 1  # (B, 3, H, W) in [-1, 1]
    assert encode_image(sd_vae, pixels).shape == (3, 4, 2, 3)


def test_encode_image_samples_reproducibly_with_a_generator(sd_vae, picture):
    first = encode_image(sd_vae, picture, generator=torch.Generator().manual_seed(1))
    again = encode_image(sd_vae, picture, generator=torch.Generator().manual_seed(1))
    mean = encode_image(sd_vae, picture, sample=False)
    assert torch.equal(first, again)
    assert not torch.allclose(first, mean)


def test_decode_latents_divides_by_the_scaling_factor_and_maps_to_pixels(sd_vae):
    latents = torch.randn(2, 4, 3, 5, generator=torch.Generator().manual_seed(0))
    images = decode_latents(sd_vae, latents)
    assert [image.size for image in images] == [(40, 24), (40, 24)]
    with torch.no_grad():
        pixels = sd_vae.decode(
            latents / sd_vae.config.scaling_factor
        ).sample  # (2, 3, 24, 40)
    expected = ((pixels / 2 + 0.5).clamp(0, 1) * 255).permute(0, 2, 3, 1).numpy()
    for image, want in zip(images, expected):
        assert image.mode == "RGB"
        assert np.abs(np.asarray(image, dtype=np.float32) - want).max() <= 0.5 + 1e-3


def test_round_trip_keeps_the_rounded_size(sd_vae):
    picture = load_sample_image("photo").crop((0, 0, 70, 43))
    (back,) = decode_latents(sd_vae, encode_image(sd_vae, picture))
    assert back.size == (64, 40)


def test_latents_follow_the_vae_dtype_and_come_back_as_pictures(sd_vae, picture):
    vae = AutoencoderKL.from_config(sd_vae.config).to(torch.bfloat16)
    latents = encode_image(vae, picture)
    assert latents.dtype == torch.bfloat16
    (back,) = decode_latents(vae, latents.float())
    assert back.size == picture.size and back.mode == "RGB"


@pytest.mark.parametrize(
    ("pixels", "message"),
    [
        (torch.zeros(3, 16, 16), r"\(B, 3, H, W\), got \(3, 16, 16\)"),
        (torch.zeros(1, 1, 16, 16), r"\(B, 3, H, W\)"),
        (torch.zeros(1, 3, 20, 16), "multiples of the VAE's scale factor 8, got 20x16"),
    ],
)
def test_encode_image_rejects_badly_shaped_pixels(sd_vae, pixels, message):
    with pytest.raises(ValueError, match=message):
        encode_image(sd_vae, pixels)


def test_encode_image_rejects_what_is_not_a_picture(sd_vae):
    with pytest.raises(TypeError, match="expected a PIL image"):
        encode_image(sd_vae, [1, 2, 3])


@pytest.mark.parametrize(
    ("latents", "error", "message"),
    [
        (torch.zeros(1, 3, 2, 2), ValueError, r"\(B, 4, h, w\), got \(1, 3, 2, 2\)"),
        (torch.zeros(4, 2, 2), ValueError, r"\(B, 4, h, w\)"),
        (
            np.zeros((1, 4, 2, 2), dtype=np.float32),
            TypeError,
            "expected a latents tensor",
        ),
    ],
)
def test_decode_latents_rejects_bad_latents(sd_vae, latents, error, message):
    with pytest.raises(error, match=message):
        decode_latents(sd_vae, latents)
