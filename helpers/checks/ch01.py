"""Checks for chapter 1, "The idea: noise, latents, and four parts"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..latents import vae_scale_factor
from . import Verdict, expect, expect_integer, run_check


def check_add_noise(add_noise_by_hand: Any, scheduler: Any) -> Verdict:
    """A hand-written forward diffusion that matches ``scheduler.add_noise`` on a batch with mixed timesteps."""

    def test(fn: Callable[..., torch.Tensor]) -> None:
        expect(callable(fn), f"expected a function, got {type(fn).__name__}")
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

    return run_check("ex-01-add-noise", add_noise_by_hand, test)


def check_crossover(crossover_t: Any, scheduler: Any) -> Verdict:
    """The first timestep where the noise coefficient exceeds the signal coefficient."""

    def test(t: Any) -> None:
        expect_integer(t, "crossover_t")
        alphas_cumprod = scheduler.alphas_cumprod
        expected = int(torch.nonzero(1 - alphas_cumprod > alphas_cumprod)[0])
        expect(
            0 <= t < len(alphas_cumprod),
            f"timesteps run from 0 to {len(alphas_cumprod) - 1}, got {t}",
        )
        expect(
            t == expected,
            f"got {t}: at that timestep sqrt(1 - alpha_prod) is "
            f"{'not yet ' if t < expected else ''}larger than sqrt(alpha_prod)"
            f"{'' if t < expected else ', but it already was one step earlier'}",
        )

    return run_check("ex-01-crossover", crossover_t, test)


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
