"""The evaluation's exact denoiser: the best possible prediction for a known set of latents, with which a scheduler
must land on the data when guidance does not make its ODE stiff."""

from __future__ import annotations

import torch

from helpers.tiny.evaluate import exact_denoise, exact_denoiser_landings


def test_exact_denoise_is_the_nearest_point_with_little_noise_and_the_mean_with_much() -> None:
    data = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    noisy = torch.tensor([[3.9, 0.2]])
    assert torch.allclose(exact_denoise(noisy, torch.tensor(0.9999), data), data[1:2], atol=1e-4)
    assert torch.allclose(exact_denoise(noisy, torch.tensor(1e-8), data), data.mean(0, keepdim=True), atol=1e-2)


def test_every_scheduler_lands_on_the_data_without_guidance(tiny_pipe) -> None:
    (landed,) = exact_denoiser_landings(tiny_pipe.vae, tiny_pipe.scheduler.config, guidance_scales=(1.0,),
                                        n_pictures=1000, n_prompts=6).values()
    assert set(landed) == {"PNDM", "DDIM", "LMS"}
    assert all(share == 1.0 for share in landed.values()), landed
