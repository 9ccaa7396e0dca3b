"""The evaluation's diagnostics: the exact denoiser (the best possible prediction for a known set of latents, with
which a scheduler must land on the data when guidance does not make its ODE stiff), guidance that differs between the
two halves of the schedule, the time of one UNet call, and the pixel judge of a picture's colours."""

from __future__ import annotations

import torch

from helpers.tiny.evaluate import (
    NOISY_FROM,
    exact_denoise,
    exact_denoiser_landings,
    guidance_at,
    guidance_label,
    judge_colors,
    unet_ms_per_call,
)
from helpers.shapes import Scene, render


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


def test_a_guidance_pair_gives_its_first_scale_to_the_noisier_half_of_the_schedule() -> None:
    assert guidance_at((3.0, 7.5), 999) == guidance_at((3.0, 7.5), NOISY_FROM) == 3.0
    assert guidance_at((3.0, 7.5), NOISY_FROM - 1) == guidance_at((3.0, 7.5), 0) == 7.5
    assert guidance_at(7.5, 999) == guidance_at(7.5, 0) == 7.5
    assert guidance_label((3.0, 7.5)) == f"guidance 3 from t={NOISY_FROM} up, 7.5 below"
    assert guidance_label(7.5) == "guidance 7.5"


def test_a_guidance_pair_is_reported_beside_the_plain_scales(tiny_pipe) -> None:
    landed = exact_denoiser_landings(tiny_pipe.vae, tiny_pipe.scheduler.config, guidance_scales=(1.0, (1.0, 1.0)),
                                     n_pictures=1000, n_prompts=6)
    assert list(landed) == ["guidance 1", f"guidance 1 from t={NOISY_FROM} up, 1 below"]
    assert landed["guidance 1"] == landed[f"guidance 1 from t={NOISY_FROM} up, 1 below"]


def test_unet_ms_per_call_times_a_guided_call(tiny_pipe) -> None:
    milliseconds = unet_ms_per_call(tiny_pipe.unet, runs=3)
    assert 0 < milliseconds < 10_000


def test_the_colour_judge_reads_the_colours_of_rendered_pictures() -> None:
    for scene in (Scene("circle", "red", "blue"), Scene("star", "yellow", "orange", "small", "top left"),
                  Scene("cross", "black", "white", "small", "bottom right"), Scene("triangle", "purple", "green")):
        shape_color, background, mask = judge_colors(render(scene, seed=1))
        assert (shape_color, background) == (scene.color, scene.background)
        assert 0.05 < mask.mean() < 0.6


def test_the_colour_judge_finds_no_shape_on_a_plain_picture() -> None:
    plain = render(Scene("circle", "red", "blue")).resize((1, 1)).resize((64, 64))
    shape_color, _, _ = judge_colors(plain)
    assert shape_color is None
