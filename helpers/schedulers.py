"""Schedulers: the seven that Chapter 5 compares, and the DDIM step written from scratch in both its forms.

``ddim_step`` is the DDIM update (Song et al. 2021, https://arxiv.org/abs/2010.02502, eq. 12 and 16) for a model
that predicts the noise; ``ddim_step_v`` is the same update for a model that predicts v (Salimans & Ho 2022,
https://arxiv.org/abs/2202.00512). Both use the variable names of diffusers' ``DDIMScheduler.step``, each line under
the equation it implements. Chapter 5 writes them in its own cells, where a learner can change them, and
``tests/test_cell_sync.py`` keeps those cells and this module identical; Chapter 5 and ``tests/test_schedulers.py``
prove them equal to the library's step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
)
from diffusers.schedulers.scheduling_ddim import DDIMSchedulerOutput
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

SCHEDULERS: dict[str, type[SchedulerMixin]] = {
    "DDPM": DDPMScheduler,
    "DDIM": DDIMScheduler,
    "PNDM": PNDMScheduler,
    "LMS": LMSDiscreteScheduler,
    "Euler": EulerDiscreteScheduler,
    "Euler ancestral": EulerAncestralDiscreteScheduler,
    "DPM-Solver++": DPMSolverMultistepScheduler,
}


def make_scheduler(name: str, config: Mapping[str, Any]) -> SchedulerMixin:
    """The scheduler called ``name`` (a key of ``SCHEDULERS``) on the noise schedule of ``config``.

    ``from_config`` keeps the model's betas, ``steps_offset`` and ``clip_sample=False``; entries a class does not
    know (PNDM's ``skip_prk_steps`` for DDIM) are ignored. DPM-Solver++ is ``DPMSolverMultistepScheduler`` with
    ``algorithm_type="dpmsolver++"``, said out loud because the class also runs the older DPM-Solver.
    """
    if name not in SCHEDULERS:
        raise ValueError(
            f"unknown scheduler {name!r}: expected one of {', '.join(SCHEDULERS)}"
        )
    extra = {"algorithm_type": "dpmsolver++"} if name == "DPM-Solver++" else {}
    return SCHEDULERS[name].from_config(config, **extra)


def alpha_prods(
    scheduler: DDIMScheduler, timestep: int | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """ᾱ_t and ᾱ_{t-1}: how much signal this step's latents hold, and the next's."""
    step_size = scheduler.config.num_train_timesteps // scheduler.num_inference_steps
    prev_timestep = timestep - step_size
    alpha_prod_t = scheduler.alphas_cumprod[timestep]
    # Before the first training step there is no ᾱ, so the scheduler keeps a final one.
    alpha_prod_t_prev = (
        scheduler.alphas_cumprod[prev_timestep]
        if prev_timestep >= 0
        else scheduler.final_alpha_cumprod
    )
    return alpha_prod_t, alpha_prod_t_prev


def ddim_step(
    scheduler: DDIMScheduler,
    model_output: torch.Tensor,
    timestep: int | torch.Tensor,
    sample: torch.Tensor,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> DDIMSchedulerOutput:
    """x_t -> x_{t-1}: one DDIM step for a noise-predicting (epsilon) model.

    ``scheduler`` supplies the noise schedule (``alphas_cumprod``) and, after
    ``set_timesteps``, the step size. ``eta=0`` is deterministic DDIM; ``eta=1`` adds
    DDPM's amount of fresh noise, drawn from ``generator``.
    """
    config = scheduler.config
    if config.prediction_type != "epsilon" or config.clip_sample or config.thresholding:
        raise ValueError("ddim_step implements noise prediction, unclipped (SD v1.5's)")
    alpha_prod_t, alpha_prod_t_prev = alpha_prods(scheduler, timestep)
    beta_prod_t = 1 - alpha_prod_t
    beta_prod_t_prev = 1 - alpha_prod_t_prev

    # x̂_0 = (x_t - √(1-ᾱ_t) ε_θ) / √ᾱ_t       the clean latents the prediction implies
    pred_original_sample = (
        sample - beta_prod_t ** (0.5) * model_output
    ) / alpha_prod_t ** (0.5)
    pred_epsilon = model_output

    # σ_t = η √((1-ᾱ_{t-1}) / (1-ᾱ_t)) √(1 - ᾱ_t / ᾱ_{t-1})                  eq. 16
    variance = (beta_prod_t_prev / beta_prod_t) * (1 - alpha_prod_t / alpha_prod_t_prev)
    std_dev_t = eta * variance ** (0.5)

    # √(1-ᾱ_{t-1}-σ_t²) ε_θ                                 "direction pointing to x_t"
    direction_coefficient = (1 - alpha_prod_t_prev - std_dev_t**2) ** (0.5)
    pred_sample_direction = direction_coefficient * pred_epsilon

    # x_{t-1} = √ᾱ_{t-1} x̂_0 + direction + σ_t z,  z ~ N(0, I)               eq. 12
    prev_sample = (
        alpha_prod_t_prev ** (0.5) * pred_original_sample + pred_sample_direction
    )
    if eta > 0:
        noise = randn_tensor(
            model_output.shape,
            generator=generator,
            device=model_output.device,
            dtype=model_output.dtype,
        )
        prev_sample = prev_sample + std_dev_t * noise
    return DDIMSchedulerOutput(prev_sample, pred_original_sample)


def ddim_step_v(
    scheduler: DDIMScheduler,
    model_output: torch.Tensor,
    timestep: int | torch.Tensor,
    sample: torch.Tensor,
) -> DDIMSchedulerOutput:
    """x_t -> x_{t-1}: one deterministic DDIM step (eta=0) for a v-predicting model."""
    config = scheduler.config
    is_v = config.prediction_type == "v_prediction"
    if not is_v or config.clip_sample or config.thresholding:
        raise ValueError("ddim_step_v implements v prediction, unclipped")
    alpha_prod_t, alpha_prod_t_prev = alpha_prods(scheduler, timestep)
    beta_prod_t = 1 - alpha_prod_t

    # x̂_0 = √ᾱ_t x_t - √(1-ᾱ_t) v_θ          no division: defined even where ᾱ_t = 0
    pred_original_sample = alpha_prod_t**0.5 * sample - beta_prod_t**0.5 * model_output
    # ε̂ = √(1-ᾱ_t) x_t + √ᾱ_t v_θ
    pred_epsilon = beta_prod_t**0.5 * sample + alpha_prod_t**0.5 * model_output

    # x_{t-1} = √ᾱ_{t-1} x̂_0 + √(1-ᾱ_{t-1}) ε̂                       eq. 12, σ_t = 0
    prev_sample = (
        alpha_prod_t_prev**0.5 * pred_original_sample
        + (1 - alpha_prod_t_prev) ** 0.5 * pred_epsilon
    )
    return DDIMSchedulerOutput(prev_sample, pred_original_sample)


class CheckedDDIMScheduler(DDIMScheduler):
    """A ``DDIMScheduler`` that also runs a hand-written step at every step and records whether the two agree.

    ``candidate`` is the step under test: this module's ``ddim_step`` unless an instance is given another (Chapter 5
    gives it the ``ddim_step`` of its own cell, so an edit there shows here). Any denoising loop driven by it
    (``helpers.pipeline.denoise``, ``StableDiffusionPipeline``) compares the candidate with the library's step on
    that loop's real UNet predictions; the loop carries on with the library's result. After the loop, ``matches``
    holds one ``torch.allclose`` verdict per step and ``differences`` the largest absolute difference (over
    ``prev_sample`` and ``pred_original_sample``).
    """

    candidate: Callable[..., DDIMSchedulerOutput] = staticmethod(ddim_step)

    def set_timesteps(self, *args: Any, **kwargs: Any) -> None:
        super().set_timesteps(*args, **kwargs)
        self.matches: list[bool] = []
        self.differences: list[float] = []

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        **kwargs: Any,
    ) -> DDIMSchedulerOutput | tuple:
        twin = None  # with eta > 0 both steps must draw the same noise: ours draws from a copy of the generator
        if generator is not None:
            twin = torch.Generator(generator.device).set_state(generator.get_state())
        ours = self.candidate(self, model_output, timestep, sample, eta, twin)
        library = super().step(
            model_output,
            timestep,
            sample,
            eta,
            generator=generator,
            **{**kwargs, "return_dict": True},
        )
        pairs = [
            (ours.prev_sample, library.prev_sample),
            (ours.pred_original_sample, library.pred_original_sample),
        ]
        self.matches.append(all(torch.allclose(a, b) for a, b in pairs))
        self.differences.append(max((a - b).abs().max().item() for a, b in pairs))
        return (
            library
            if kwargs.get("return_dict", True)
            else (library.prev_sample, library.pred_original_sample)
        )
