"""The chapter 1 checks pass the reference solutions, fail plausible wrong answers and say NOT DONE to `...`."""

import pytest
import torch
from diffusers import DDPMScheduler, PNDMScheduler

from helpers.checks import ExerciseFailed
from helpers.checks.ch01 import (
    CLEAN_TIMESTEPS,
    check_add_noise,
    check_clean_guess,
    check_wide_latent_numbers,
    clean_guess_errors,
)
from helpers.images import load_sample_image
from helpers.latents import encode_image
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


# ex-01-clean-guess ------------------------------------------------------------------------------------------------

EXPLANATION = (
    "The clean guess divides by sqrt(alpha_prod_t): near t = 1000 that is tiny, so a small error in the "
    "predicted noise becomes a large error in the picture it implies; there is little picture left to see."
)


@pytest.fixture(scope="module")
def batch(tiny_pipe):
    """The chapter's inputs: two pictures' latents, their captions' embeddings, a DDPM scheduler."""
    prompts = [
        "a red circle on a blue background",
        "a yellow star on a black background",
    ]
    pictures = [load_sample_image(prompt, size=64) for prompt in prompts]
    z = torch.cat([encode_image(tiny_pipe.vae, p, sample=False) for p in pictures])
    embeddings, _ = tiny_pipe.encode_prompt(prompts, "cpu", 1, False)
    scheduler = DDPMScheduler.from_config(tiny_pipe.scheduler.config)
    return tiny_pipe.unet, scheduler, z, embeddings


def test_clean_guess(batch):
    errors = {t: clean_guess_errors(*batch, t) for t in CLEAN_TIMESTEPS}
    assert check_clean_guess(errors, EXPLANATION, *batch)
    unet, scheduler, z, embeddings = batch
    scheduler_1000 = DDPMScheduler.from_config(scheduler.config)
    not_divided = {}  # the clean guess without the division by sqrt(alpha_prod_t)
    for t in CLEAN_TIMESTEPS:
        noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
        timesteps = torch.full((len(z),), t)
        z_t = scheduler_1000.add_noise(z, noise, timesteps)
        with torch.no_grad():
            eps_pred = unet(z_t, timesteps, encoder_hidden_states=embeddings).sample
        guess = z_t - (1 - scheduler_1000.alphas_cumprod[t]).sqrt() * eps_pred
        not_divided[t] = (errors[t][0], torch.nn.functional.mse_loss(guess, z).item())
    wrong_answers = [
        ({t: errors[t][::-1] for t in errors}, EXPLANATION),  # the pair swapped
        (not_divided, EXPLANATION),
        ({t: errors[t] for t in CLEAN_TIMESTEPS[:1]}, EXPLANATION),  # one timestep
        (errors, "it is larger"),  # no explanation
    ]
    for answer, explanation in wrong_answers:
        with pytest.raises(ExerciseFailed):
            check_clean_guess(answer, explanation, *batch)
    assert check_clean_guess(..., EXPLANATION, *batch).passed is False


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


def test_placeholder_is_not_done(scheduler, expect_not_done):
    expect_not_done(
        check_add_noise(..., scheduler),
        check_wide_latent_numbers(..., make_vae(TinyConfig()), 64),
    )
