"""Checks for chapter 1, "The idea: noise, latents, and four parts"."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ..latents import vae_scale_factor
from . import (
    Verdict,
    expect,
    expect_keys,
    expect_number,
    run_check,
    run_function_check,
    run_open_question,
)


def check_add_noise(add_noise_by_hand: Any, scheduler: Any) -> Verdict:
    """A hand-written forward diffusion that matches ``scheduler.add_noise`` on a batch with mixed timesteps."""

    def test(fn: Callable[..., torch.Tensor]) -> None:
        generator = torch.Generator().manual_seed(0)
        latents, noise = (
            torch.randn(3, 4, 5, 6, generator=generator),
            torch.randn(3, 4, 5, 6, generator=generator),
        )
        last = scheduler.config.num_train_timesteps - 1
        timesteps = torch.tensor([0, last // 2, last])
        # A fresh copy on the CPU: add_noise moves a scheduler's alphas_cumprod to the latents' device (the
        # learner's may be on the GPU now), so the whole test runs on the CPU and leaves theirs alone.
        reference = type(scheduler).from_config(scheduler.config)
        got = fn(latents, noise, timesteps, reference.alphas_cumprod)
        expect(
            isinstance(got, torch.Tensor) and got.shape == latents.shape,
            f"expected a tensor shaped {tuple(latents.shape)}, got {getattr(got, 'shape', type(got).__name__)}",
        )
        expected = reference.add_noise(latents, noise, timesteps)
        error = (got - expected).abs().max().item()
        expect(
            error < 1e-5,
            f"differs from scheduler.add_noise by up to {error:.3g}: the coefficients are the square "
            "roots of alpha_prod_t and 1 - alpha_prod_t, one pair per sample",
        )

    return run_function_check("ex-01-add-noise", add_noise_by_hand, test)


CLEAN_TIMESTEPS = (50, 950)  # nearly clean, nearly all noise


def clean_guess_errors(
    unet: Any, scheduler: Any, z: torch.Tensor, text_embeddings: torch.Tensor, t: int
) -> tuple[float, float]:
    """At timestep ``t`` for every picture of ``z``, from noise seeded with 0: the MSE of the UNet's noise
    prediction, and the MSE of the clean latents that prediction implies."""
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
    noise = noise.to(z.device, z.dtype)  # (B, 4, h, w)
    timesteps = torch.full((len(z),), t, device=z.device)
    alpha_prod_t = scheduler.alphas_cumprod[t].to(z.device)
    z_t = scheduler.add_noise(z, noise, timesteps)
    with torch.no_grad():
        eps_pred = unet(z_t, timesteps, encoder_hidden_states=text_embeddings).sample
    z_0_hat = (z_t - (1 - alpha_prod_t).sqrt() * eps_pred) / alpha_prod_t.sqrt()
    return (
        F.mse_loss(eps_pred.float(), noise.float()).item(),
        F.mse_loss(z_0_hat.float(), z.float()).item(),
    )


def check_clean_guess(
    guess_errors: Any,
    explanation: Any,
    unet: Any,
    scheduler: Any,
    z: torch.Tensor,
    text_embeddings: torch.Tensor,
) -> Verdict:
    """{t: (noise MSE, clean-latents MSE)} at ``CLEAN_TIMESTEPS``, and an explanation."""

    def test(errors: Any) -> None:
        expect_keys(errors, CLEAN_TIMESTEPS, "guess_errors")
        for t in CLEAN_TIMESTEPS:
            got = errors[t]
            expect(
                isinstance(got, tuple) and len(got) == 2,
                f"guess_errors[{t}]: expected a pair (noise error, clean error), got {got!r}",
            )
            for value in got:
                expect_number(value, f"guess_errors[{t}]: a float (use .item())")
            want = clean_guess_errors(unet, scheduler, z, text_embeddings, t)
            for what, value, expected in zip(("noise", "clean"), got, want):
                expect(
                    math.isclose(value, expected, rel_tol=1e-2, abs_tol=1e-6),
                    f"guess_errors[{t}]: the {what} error is {value:.4g}, expected "
                    f"{expected:.4g}: noise from torch.Generator().manual_seed(0), the "
                    "clean guess (z_t - sqrt(1 - alpha_prod_t) eps_pred) / sqrt(alpha_prod_t), "
                    "each compared by its mean squared error",
                )

    return run_open_question("ex-01-clean-guess", guess_errors, explanation, test)


def check_wide_latent_numbers(
    wide_latent_numbers: Any, vae: Any, native: int
) -> Verdict:
    """Numbers in the latents of a picture ``native`` high and ``2 * native`` wide."""

    def test(count: Any) -> None:
        expect(
            isinstance(count, int) and not isinstance(count, bool),
            f"expected an int, got {type(count).__name__}",
        )
        factor = vae_scale_factor(vae)
        positions = (native // factor) * (2 * native // factor)
        expected = vae.config.latent_channels * positions
        expect(
            count != positions,
            f"got {count}: that counts positions; each holds {vae.config.latent_channels} channels",
        )
        expect(
            count != 3 * native * 2 * native,
            f"got {count}: that is the picture's numbers, not its latents'",
        )
        expect(
            count == expected,
            f"got {count}: the latents are {vae.config.latent_channels} channels of "
            f"(height / {factor}) x (width / {factor})",
        )

    return run_check("ex-01-wide-latents", wide_latent_numbers, test)
