"""The chapter 1 checks pass the reference solutions, fail plausible wrong answers and say NOT DONE to `...`."""

import pytest
import torch
from diffusers import PNDMScheduler

from helpers.checks import ExerciseFailed
from helpers.checks.ch01 import (
    check_add_noise,
    check_crossover,
    check_wide_latent_numbers,
)
from helpers.sd15 import sd15_config
from helpers.tiny.config import TinyConfig, make_vae


@pytest.fixture(scope="module")
def scheduler():
    return PNDMScheduler.from_config(
        {k: v for k, v in sd15_config("scheduler").items() if k != "clip_sample"}
    )


def add_noise_by_hand(latents, noise, timesteps, alphas_cumprod):
    alpha_prod_t = alphas_cumprod[timesteps].view(-1, 1, 1, 1)
    return alpha_prod_t.sqrt() * latents + (1 - alpha_prod_t).sqrt() * noise


def test_add_noise(scheduler, capsys):
    assert check_add_noise(add_noise_by_hand, scheduler)
    assert "[ex-01-add-noise] PASS" in capsys.readouterr().out

    def without_square_roots(latents, noise, timesteps, alphas_cumprod):
        alpha_prod_t = alphas_cumprod[timesteps].view(-1, 1, 1, 1)
        return alpha_prod_t * latents + (1 - alpha_prod_t) * noise

    def one_timestep_for_all(latents, noise, timesteps, alphas_cumprod):
        return add_noise_by_hand(
            latents, noise, timesteps[:1].repeat(len(timesteps)), alphas_cumprod
        )

    for wrong in (without_square_roots, one_timestep_for_all):
        with pytest.raises(ExerciseFailed, match=r"differs from scheduler\.add_noise"):
            check_add_noise(wrong, scheduler)
    with pytest.raises(ExerciseFailed, match="function"):
        check_add_noise(42, scheduler)


def test_add_noise_accepts_a_correct_answer_after_add_noise_moved_the_schedule_to_another_device():
    """On a GPU, the chapter's add_noise moves scheduler.alphas_cumprod to the GPU; an answer that indexes it
    without `.to(latents.device)` is still right. The meta device stands in for the GPU, and stays untouched."""
    scheduler = PNDMScheduler.from_config(
        {k: v for k, v in sd15_config("scheduler").items() if k != "clip_sample"}
    )
    scheduler.alphas_cumprod = scheduler.alphas_cumprod.to("meta")
    assert check_add_noise(add_noise_by_hand, scheduler)
    assert scheduler.alphas_cumprod.device.type == "meta"


def test_crossover(scheduler, capsys):
    alphas_cumprod = scheduler.alphas_cumprod
    crossover_t = int(
        torch.nonzero((1 - alphas_cumprod).sqrt() > alphas_cumprod.sqrt())[0]
    )
    assert check_crossover(crossover_t, scheduler)
    assert "[ex-01-crossover] PASS" in capsys.readouterr().out
    for wrong in (crossover_t - 1, crossover_t + 1, 500):
        with pytest.raises(ExerciseFailed, match=f"got {wrong}"):
            check_crossover(wrong, scheduler)
    with pytest.raises(ExerciseFailed, match="Python int"):
        check_crossover(torch.tensor(crossover_t), scheduler)
    for not_whole in (float(crossover_t), crossover_t + 0.4, str(crossover_t)):
        with pytest.raises(ExerciseFailed, match="crossover_t: expected a Python int"):
            check_crossover(not_whole, scheduler)


def test_wide_latent_numbers(sd_vae, capsys):
    for vae in (
        make_vae(TinyConfig()),
        sd_vae,
    ):  # tiny-shapes-sd's layout and SD v1.5's
        native, factor = (
            vae.config.sample_size,
            2 ** (len(vae.config.block_out_channels) - 1),
        )
        positions = (native // factor) * (2 * native // factor)
        assert check_wide_latent_numbers(
            vae.config.latent_channels * positions, vae, native
        )
        assert "[ex-01-wide-latents] PASS" in capsys.readouterr().out
        with pytest.raises(ExerciseFailed, match="positions"):
            check_wide_latent_numbers(positions, vae, native)
        with pytest.raises(ExerciseFailed, match="picture's numbers"):
            check_wide_latent_numbers(3 * native * 2 * native, vae, native)
        with pytest.raises(ExerciseFailed, match="channels of"):
            check_wide_latent_numbers(
                vae.config.latent_channels * (native // factor) ** 2, vae, native
            )


def test_placeholder_is_not_done(scheduler, capsys):
    assert check_add_noise(..., scheduler).passed is False
    assert check_crossover(..., scheduler).passed is False
    assert check_wide_latent_numbers(..., make_vae(TinyConfig()), 64).passed is False
    assert capsys.readouterr().out.count("NOT DONE") == 3
