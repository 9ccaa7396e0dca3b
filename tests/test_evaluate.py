"""The evaluation's diagnostics: the exact denoiser (the best possible prediction for a known set of latents, with
which a scheduler must land on the data when guidance does not make its ODE stiff), the seed spread, and the time of
one UNet call."""

from __future__ import annotations

import torch
from PIL import Image

from helpers.tiny.evaluate import (
    exact_denoise,
    exact_denoiser_landings,
    mean_pairwise_distance,
    unet_seconds_per_call,
)


def test_exact_denoise_is_the_nearest_point_with_little_noise_and_the_mean_with_much() -> (
    None
):
    data = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    noisy = torch.tensor([[3.9, 0.2]])
    assert torch.allclose(
        exact_denoise(noisy, torch.tensor(0.9999), data), data[1:2], atol=1e-4
    )
    assert torch.allclose(
        exact_denoise(noisy, torch.tensor(1e-8), data),
        data.mean(0, keepdim=True),
        atol=1e-2,
    )


def test_every_scheduler_lands_on_the_data_without_guidance(tiny_pipe) -> None:
    landed = exact_denoiser_landings(
        tiny_pipe.vae,
        tiny_pipe.scheduler.config,
        guidance_scales=(1.0,),
        n_pictures=1000,
        n_prompts=6,
    )
    assert list(landed) == ["guidance 1"]
    assert set(landed["guidance 1"]) == {"PNDM", "DDIM", "LMS"}
    assert all(share == 1.0 for share in landed["guidance 1"].values()), landed


def test_mean_pairwise_distance_is_zero_for_copies_and_grows_with_difference() -> None:
    black, grey, white = (Image.new("RGB", (8, 8), (v, v, v)) for v in (0, 100, 200))
    assert mean_pairwise_distance([black, black.copy()]) == 0
    assert mean_pairwise_distance([black, grey]) == 100
    assert mean_pairwise_distance([black, white]) > mean_pairwise_distance(
        [black, grey]
    )


def test_unet_seconds_per_call_times_a_guided_call(tiny_pipe) -> None:
    seconds = unet_seconds_per_call(tiny_pipe.unet, runs=3)
    assert 0 < seconds < 10
