"""Checks for Chapter 5 (schedulers). Expectations come from diffusers' schedulers built from the config passed in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from diffusers import DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import (
    rescale_noise_cfg,
)

from ..compare import mean_pixel_diff
from . import (
    Verdict,
    expect,
    expect_integer,
    expect_numbers,
    expect_tensor,
    quiet_copy,
    run_check,
    run_function_check,
    run_open_question,
)


def _expect_close(answer: Any, expected: torch.Tensor, what: str) -> None:
    """``answer`` is a tensor of ``expected``'s shape and values (float32 tolerance)."""
    expect_tensor(answer, expected.shape, what)
    worst = (answer.double().cpu() - expected.double()).abs().max().item()
    expect(
        torch.allclose(answer.double().cpu(), expected.double(), rtol=1e-4, atol=1e-6),
        f"{what}: values differ from the scheduler's by up to {worst:.3g}",
    )


def check_linear_schedule(linear_alphas_cumprod: Any) -> Verdict:
    """DDPM's linear schedule (0.0001 to 0.02 over 1000 steps): the cumulative product of 1 - beta."""

    def test(answer: Any) -> None:
        expected = DDPMScheduler(
            beta_schedule="linear", beta_start=0.0001, beta_end=0.02
        ).alphas_cumprod
        _expect_close(answer, expected, "linear_alphas_cumprod")

    return run_check("ex-05-linear-schedule", linear_alphas_cumprod, test)


def check_crossover(crossover_t: Any, scheduler_config: Mapping[str, Any]) -> Verdict:
    """The first timestep whose noise level sqrt(1 - ᾱ) exceeds its signal level sqrt(ᾱ)."""

    def test(answer: Any) -> None:
        alphas_cumprod = DDPMScheduler.from_config(scheduler_config).alphas_cumprod
        expected = int(
            torch.nonzero((1 - alphas_cumprod).sqrt() > alphas_cumprod.sqrt())[0]
        )
        t = expect_integer(answer, "crossover_t", tensors=True)
        expect(
            t == expected,
            f"crossover_t: {t} is not the first timestep where noise exceeds "
            "signal (check the comparison and that you take the first one)",
        )

    return run_check("ex-05-crossover", crossover_t, test)


def check_sigmas(
    sigmas: Any, scheduler_config: Mapping[str, Any], num_inference_steps: int = 10
) -> Verdict:
    """The Euler scheduler's sigmas for ``num_inference_steps`` steps, without the final 0."""

    def test(answer: Any) -> None:
        euler = EulerDiscreteScheduler.from_config(scheduler_config)
        euler.set_timesteps(num_inference_steps)
        _expect_close(answer, euler.sigmas[:-1], "sigmas")

    return run_check("ex-05-sigmas", sigmas, test)


def check_predict_epsilon(predict_epsilon: Any) -> Verdict:
    """A function recovering the noise from x_t and x̂_0, for float and tensor ``alpha_prod_t``."""

    def test(answer: Any) -> None:
        generator = torch.Generator().manual_seed(5)
        clean, noise = torch.randn(2, 2, 4, 8, 8, generator=generator)
        for alpha_prod_t in (0.9, torch.tensor(0.3), 0.02):
            sample = alpha_prod_t**0.5 * clean + (1 - alpha_prod_t) ** 0.5 * noise
            result = answer(sample, clean, alpha_prod_t)
            _expect_close(
                result,
                noise,
                f"predict_epsilon(x_t, x0, alpha_prod_t={float(alpha_prod_t)})",
            )

    return run_function_check(
        "ex-05-predict-epsilon", predict_epsilon, test, name="predict_epsilon"
    )


def check_v_from_epsilon(
    v_from_epsilon: Any, scheduler_config: Mapping[str, Any]
) -> Verdict:
    """A function turning a noise prediction into v, as ``get_velocity`` defines v, for float and tensor ᾱ_t."""

    def test(answer: Any) -> None:
        scheduler = DDPMScheduler.from_config(scheduler_config)
        generator = torch.Generator().manual_seed(5)
        clean, noise = torch.randn(2, 2, 4, 8, 8, generator=generator)
        for t in (50, 500, 950):
            timesteps = torch.tensor([t, t])
            sample = scheduler.add_noise(clean, noise, timesteps)
            alpha_prod_t = scheduler.alphas_cumprod[t]
            for given in (alpha_prod_t, float(alpha_prod_t)):
                _expect_close(
                    answer(sample, noise, given),
                    scheduler.get_velocity(clean, noise, timesteps),
                    f"v_from_epsilon(x_t, ε, alpha_prod_t of t={t})",
                )

    return run_function_check(
        "ex-05-v-from-epsilon", v_from_epsilon, test, name="v_from_epsilon"
    )


def check_karras_sigmas(
    karras_sigmas: Any,
    scheduler_config: Mapping[str, Any],
    num_inference_steps: int = 10,
) -> Verdict:
    """The sigmas of ``EulerDiscreteScheduler(use_karras_sigmas=True)`` for ``num_inference_steps``, without the 0."""

    def test(answer: Any) -> None:
        karras = EulerDiscreteScheduler.from_config(
            scheduler_config, use_karras_sigmas=True
        )
        karras.set_timesteps(num_inference_steps)
        _expect_close(answer, karras.sigmas[:-1], "karras_sigmas")

    return run_check("ex-05-karras-sigmas", karras_sigmas, test)


def check_zero_terminal_snr(
    rescale_zero_terminal_snr: Any, scheduler_config: Mapping[str, Any]
) -> Verdict:
    """A function rescaling betas to zero terminal SNR, as ``DDIMScheduler(rescale_betas_zero_snr=True)`` does."""

    def test(answer: Any) -> None:
        for schedule in (
            {**scheduler_config},
            {
                **scheduler_config,
                "beta_schedule": "linear",
                "beta_start": 0.0001,
                "beta_end": 0.02,
            },
        ):
            betas = DDIMScheduler.from_config(schedule).betas
            expected = DDIMScheduler.from_config(
                schedule, rescale_betas_zero_snr=True
            ).betas
            _expect_close(
                answer(betas.clone()),
                expected,
                f"rescale_zero_terminal_snr(betas of {schedule['beta_schedule']!r})",
            )

    return run_function_check(
        "ex-05-zero-terminal-snr",
        rescale_zero_terminal_snr,
        test,
        name="rescale_zero_terminal_snr",
    )


def check_rescale_noise_cfg(rescale: Any) -> Verdict:
    """A function ``(noise_cfg, noise_pred_text, guidance_rescale)`` equal to diffusers' ``rescale_noise_cfg``."""

    def test(answer: Any) -> None:
        generator = torch.Generator().manual_seed(5)
        # A batch of two pictures whose predictions differ in scale: each is rescaled by its own std.
        scale = torch.tensor([1.0, 3.0]).view(2, 1, 1, 1)
        noise_pred_text = torch.randn(2, 4, 8, 8, generator=generator) * scale
        noise_cfg = noise_pred_text * 4 + torch.randn(2, 4, 8, 8, generator=generator)
        for guidance_rescale in (0.0, 0.7, 1.0):
            _expect_close(
                answer(noise_cfg, noise_pred_text, guidance_rescale),
                rescale_noise_cfg(noise_cfg, noise_pred_text, guidance_rescale),
                f"rescale_noise_cfg(..., guidance_rescale={guidance_rescale}) on a batch of two",
            )

    return run_function_check(
        "ex-05-guidance-rescale", rescale, test, name="rescale_noise_cfg"
    )


CONFIG_PROMPT, CONFIG_STEPS = "a yellow star on a black background", 10
CONFIG_CHANGES = {"timestep_spacing": "trailing", "prediction_type": "v_prediction"}


def config_change_differences(pipe: Any, config: Mapping[str, Any]) -> dict[str, float]:
    """For each entry of ``CONFIG_CHANGES``, the mean pixel difference between DDIM pictures (the chapter's prompt,
    seed 0, 25 steps) with the model's config and with that one entry changed, drawn by the library's pipeline."""

    def picture(**changed: Any) -> Any:
        scheduler = DDIMScheduler.from_config(config, **changed)
        library = quiet_copy(pipe, scheduler=scheduler)
        return library(
            CONFIG_PROMPT,
            num_inference_steps=CONFIG_STEPS,
            generator=torch.Generator().manual_seed(0),
        ).images[0]

    reference = picture()
    return {
        key: mean_pixel_diff([reference], [picture(**{key: value})])
        for key, value in CONFIG_CHANGES.items()
    }


def check_config_change(
    config_change: Any, explanation: Any, pipe: Any, config: Mapping[str, Any]
) -> Verdict:
    """{config entry: mean pixel difference it makes}, and an explanation of which entries belong to the model."""

    def test(measured: Any) -> None:
        expect_numbers(measured, CONFIG_CHANGES, "config_change", "a float", plain=True)
        for key, want in config_change_differences(pipe, config).items():
            expect(
                abs(measured[key] - want) <= 0.5,
                f"config_change[{key!r}] is {measured[key]:.2f}, expected {want:.2f}: "
                f"DDIM from the model's config, then with {key}="
                f"{CONFIG_CHANGES[key]!r}; {CONFIG_PROMPT!r}, seed 0, {CONFIG_STEPS} "
                "steps, the mean absolute pixel difference",
            )

    return run_open_question("ex-05-config-change", config_change, explanation, test)


__all__ = [
    "check_config_change",
    "check_crossover",
    "check_karras_sigmas",
    "check_linear_schedule",
    "check_predict_epsilon",
    "check_rescale_noise_cfg",
    "check_sigmas",
    "check_v_from_epsilon",
    "check_zero_terminal_snr",
]
