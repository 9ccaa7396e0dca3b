"""Checks for chapter 4 (the UNet): the weights that read text, the bottom of the U, the timestep features."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel

from ..images import load_sample_image
from ..latents import encode_image, vae_scale_factor
from ..pipeline import encode_prompt
from . import (
    Verdict,
    expect,
    expect_numbers,
    run_check,
    run_function_check,
    run_open_question,
)


def text_reading_params(unet: UNet2DConditionModel) -> int:
    """Parameters of the cross-attention key and value projections: the only weights applied to the text."""
    return sum(
        p.numel()
        for name, p in unet.named_parameters()
        if ".attn2.to_k." in name or ".attn2.to_v." in name
    )


def check_text_reading_params(answer: Any, unet: UNet2DConditionModel) -> Verdict:
    """The number of parameters in every ``attn2.to_k`` and ``attn2.to_v``."""

    def test(count: Any) -> None:
        expect(isinstance(count, int), f"expected an int, got {type(count).__name__}")
        expected = text_reading_params(unet)
        with_queries = expected + sum(
            p.numel() for name, p in unet.named_parameters() if ".attn2.to_q." in name
        )
        expect(
            count != with_queries,
            "to_q reads the picture's features, not the text: count to_k and to_v only",
        )
        expect(
            count == expected,
            f"expected {expected:,} parameters in the cross-attention layers' to_k and to_v, "
            f"got {count:,}",
        )

    return run_check("ex-04-text-params", answer, test)


TIMESTEP_PROMPT, TRUE_TIMESTEP, TOLD_TIMESTEPS = (
    "a yellow circle on a black background",
    500,
    (100, 500, 900),
)


def told_timestep_errors(pipe: Any, told: int) -> float:
    """MSE of the UNet's noise prediction for latents noised at ``TRUE_TIMESTEP`` (noise seeded with 0) when the
    UNet is told the timestep ``told``."""
    native = pipe.unet.config.sample_size * vae_scale_factor(pipe.vae)
    picture = load_sample_image(TIMESTEP_PROMPT, size=native)
    z = encode_image(pipe.vae, picture, sample=False)  # (1, 4, h, w)
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
    noise = noise.to(z.device, z.dtype)
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    z_t = scheduler.add_noise(z, noise, torch.tensor([TRUE_TIMESTEP]))
    prompt_embeds, _ = encode_prompt(pipe.tokenizer, pipe.text_encoder, TIMESTEP_PROMPT)
    with torch.no_grad():
        eps_pred = pipe.unet(z_t, told, encoder_hidden_states=prompt_embeds).sample
    return F.mse_loss(eps_pred.float(), noise.float()).item()


def check_told_timestep(timestep_errors: Any, explanation: Any, pipe: Any) -> Verdict:
    """{t told: noise MSE} for latents noised at 500 and the UNet told 100, 500 and 900; an explanation."""

    def test(errors: Any) -> None:
        expect_numbers(errors, TOLD_TIMESTEPS, "timestep_errors")
        for told in TOLD_TIMESTEPS:
            want = told_timestep_errors(pipe, told)
            expect(
                math.isclose(errors[told], want, rel_tol=1e-2, abs_tol=1e-6),
                f"timestep_errors[{told}] is {errors[told]:.4g}, expected {want:.4g}: the "
                f"latents noised at t = {TRUE_TIMESTEP} with noise seeded 0, the UNet told "
                f"t = {told}, the MSE of its prediction against that noise",
            )

    return run_open_question("ex-04-told-timestep", timestep_errors, explanation, test)


def check_timestep_features(answer: Any, unet: UNet2DConditionModel) -> Verdict:
    """A function ``(timesteps, dim) -> (N, dim)`` equal to ``unet.time_proj`` (the sinusoidal features)."""

    def test(function: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
        timesteps = torch.tensor([0, 1, 10, 250, 999])
        dim = unet.time_proj.num_channels
        expected = unet.time_proj(timesteps).float().cpu()
        features = function(timesteps, dim)
        expect(
            isinstance(features, torch.Tensor) and tuple(features.shape) == (5, dim),
            f"for 5 timesteps expected a (5, {dim}) tensor, got {getattr(features, 'shape', type(features))}",
        )
        features = features.detach().float().cpu()
        half, proj = dim // 2, unet.time_proj
        swapped = torch.cat([features[:, half:], features[:, :half]], dim=1)
        order = (
            "the cosines first, then the sines"
            if proj.flip_sin_to_cos
            else "the sines first, then the cosines"
        )
        expect(
            not torch.allclose(swapped, expected, atol=1e-4),
            f"the halves are swapped: with flip_sin_to_cos={proj.flip_sin_to_cos} come {order}",
        )
        expect(
            torch.allclose(features, expected, atol=1e-4),
            "the features differ from unet.time_proj: check the frequencies, "
            f"exp(-ln(10000) * i / ({half} - {proj.downscale_freq_shift})) for i = 0 .. {half - 1}",
        )

    return run_function_check("ex-04-timestep-features", answer, test)
