"""Chapter 5's checks pass the reference solutions, fail plausible wrong answers, and say NOT DONE on ``...``."""

from __future__ import annotations

import pytest
import torch
from diffusers import EulerDiscreteScheduler, PNDMScheduler

from helpers import TINY_MODEL_DIR
from helpers.checks import ExerciseFailed
from helpers.checks.ch05 import (
    check_config_change,
    check_crossover,
    check_karras_sigmas,
    check_linear_schedule,
    check_predict_epsilon,
    check_rescale_noise_cfg,
    check_sigmas,
    check_v_from_epsilon,
    check_zero_terminal_snr,
    config_change_differences,
)

# What the chapter's `config` holds: tiny-shapes-sd's own scheduler config, with its explicit "leading" spacing.
CONFIG = PNDMScheduler.from_pretrained(TINY_MODEL_DIR, subfolder="scheduler").config
ALPHAS_CUMPROD = torch.cumprod(
    1 - torch.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2, dim=0
)


def sigmas_at(alphas_cumprod: torch.Tensor, steps: int = 10) -> torch.Tensor:
    euler = EulerDiscreteScheduler.from_config(CONFIG)
    euler.set_timesteps(steps)
    visited = euler.timesteps.long()
    return ((1 - alphas_cumprod[visited]) / alphas_cumprod[visited]).sqrt()


def predict_epsilon(sample, pred_original_sample, alpha_prod_t):
    return (sample - alpha_prod_t**0.5 * pred_original_sample) / (
        1 - alpha_prod_t
    ) ** 0.5


def predict_epsilon_without_roots(sample, pred_original_sample, alpha_prod_t):
    return (sample - alpha_prod_t * pred_original_sample) / (1 - alpha_prod_t)


def predict_epsilon_roots_swapped(sample, pred_original_sample, alpha_prod_t):
    return (
        sample - (1 - alpha_prod_t) ** 0.5 * pred_original_sample
    ) / alpha_prod_t**0.5


def v_from_epsilon(sample, epsilon, alpha_prod_t):
    return (epsilon - (1 - alpha_prod_t) ** 0.5 * sample) / alpha_prod_t**0.5


def v_with_x_t_for_x0(sample, epsilon, alpha_prod_t):
    """v's definition, but with the noisy sample where the clean one belongs."""
    return alpha_prod_t**0.5 * epsilon - (1 - alpha_prod_t) ** 0.5 * sample


def v_sign_flipped(sample, epsilon, alpha_prod_t):
    return (epsilon + (1 - alpha_prod_t) ** 0.5 * sample) / alpha_prod_t**0.5


def karras(
    sigma_max: float, sigma_min: float, steps: int = 10, rho: float = 7.0
) -> torch.Tensor:
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    return (
        sigma_max ** (1 / rho)
        + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))
    ) ** rho


def rescale_zero_terminal_snr(betas):
    alphas_bar_sqrt = torch.cumprod(1 - betas, dim=0).sqrt()
    first, last = alphas_bar_sqrt[0].clone(), alphas_bar_sqrt[-1].clone()
    alphas_bar_sqrt = (alphas_bar_sqrt - last) * first / (first - last)
    alphas_bar = alphas_bar_sqrt**2
    alphas = torch.cat([alphas_bar[:1], alphas_bar[1:] / alphas_bar[:-1]])
    return 1 - alphas


def zero_snr_shift_only(betas):
    """Shifts √ᾱ to end at 0 but forgets to scale it back: the first step loses its signal too."""
    alphas_bar = (
        torch.cumprod(1 - betas, dim=0).sqrt()
        - torch.cumprod(1 - betas, dim=0)[-1].sqrt()
    ) ** 2
    return 1 - torch.cat([alphas_bar[:1], alphas_bar[1:] / alphas_bar[:-1]])


def zero_snr_on_alphas_bar(betas):
    """Shifts and scales ᾱ itself instead of its square root."""
    alphas_bar = torch.cumprod(1 - betas, dim=0)
    alphas_bar = (
        (alphas_bar - alphas_bar[-1]) * alphas_bar[0] / (alphas_bar[0] - alphas_bar[-1])
    )
    return 1 - torch.cat([alphas_bar[:1], alphas_bar[1:] / alphas_bar[:-1]])


def per_picture_std(x):
    return x.std(dim=(1, 2, 3), keepdim=True)


def rescale_noise_cfg(noise_cfg, noise_pred_text, guidance_rescale):
    rescaled = noise_cfg * per_picture_std(noise_pred_text) / per_picture_std(noise_cfg)
    return guidance_rescale * rescaled + (1 - guidance_rescale) * noise_cfg


def rescale_over_the_batch(noise_cfg, noise_pred_text, guidance_rescale):
    """One std for the whole batch: a picture with strong guidance drags the others."""
    rescaled = noise_cfg * noise_pred_text.std() / noise_cfg.std()
    return guidance_rescale * rescaled + (1 - guidance_rescale) * noise_cfg


def rescale_mix_swapped(noise_cfg, noise_pred_text, guidance_rescale):
    rescaled = noise_cfg * per_picture_std(noise_pred_text) / per_picture_std(noise_cfg)
    return (1 - guidance_rescale) * rescaled + guidance_rescale * noise_cfg


def default_sigmas(steps: int = 10) -> torch.Tensor:
    euler = EulerDiscreteScheduler.from_config(CONFIG)
    euler.set_timesteps(steps)
    return euler.sigmas[:-1].double()


TRAINING_SIGMA_MAX = float(((1 - ALPHAS_CUMPROD[-1]) / ALPHAS_CUMPROD[-1]).sqrt())
CASES = [  # check, reference answer, wrong answers, extra arguments
    (
        check_linear_schedule,
        torch.cumprod(1 - torch.linspace(0.0001, 0.02, 1000), dim=0),
        [
            torch.cumprod(1 - torch.linspace(0.0001**0.5, 0.02**0.5, 1000) ** 2, dim=0),
            1 - torch.linspace(0.0001, 0.02, 1000),
        ],
        (),
    ),
    (
        check_crossover,
        int(torch.nonzero((1 - ALPHAS_CUMPROD).sqrt() > ALPHAS_CUMPROD.sqrt())[0]),
        [
            int(torch.nonzero(ALPHAS_CUMPROD.sqrt() < (1 - ALPHAS_CUMPROD))[0]),
            int(torch.nonzero((1 - ALPHAS_CUMPROD).sqrt() > ALPHAS_CUMPROD.sqrt())[-1]),
        ],
        (CONFIG,),
    ),
    (
        check_sigmas,
        sigmas_at(ALPHAS_CUMPROD),
        [
            ((1 - ALPHAS_CUMPROD[::100]) / ALPHAS_CUMPROD[::100]).sqrt().flip(0),
            ((1 - ALPHAS_CUMPROD) / ALPHAS_CUMPROD)[
                EulerDiscreteScheduler.from_config(CONFIG).timesteps[:10].long()
            ],
        ],
        (CONFIG,),
    ),
    (
        check_predict_epsilon,
        predict_epsilon,
        [predict_epsilon_without_roots, predict_epsilon_roots_swapped],
        (),
    ),
    (
        check_v_from_epsilon,
        v_from_epsilon,
        [v_with_x_t_for_x0, v_sign_flipped],
        (CONFIG,),
    ),
    (
        check_karras_sigmas,
        karras(float(default_sigmas()[0]), float(default_sigmas()[-1])),
        [
            karras(float(default_sigmas()[0]), float(default_sigmas()[-1]), rho=1.0),
            karras(TRAINING_SIGMA_MAX, float(default_sigmas()[-1])),
            karras(float(default_sigmas()[0]), float(default_sigmas()[-1])).flip(0),
        ],
        (CONFIG,),
    ),
    (
        check_zero_terminal_snr,
        rescale_zero_terminal_snr,
        [zero_snr_shift_only, zero_snr_on_alphas_bar],
        (CONFIG,),
    ),
    (
        check_rescale_noise_cfg,
        rescale_noise_cfg,
        [rescale_over_the_batch, rescale_mix_swapped],
        (),
    ),
]
IDS = [case[0].__name__ for case in CASES]
WRONG_CASES = [
    (check, wrong, extra) for check, _, wrongs, extra in CASES for wrong in wrongs
]
WRONG_IDS = [
    f"{check.__name__}-wrong{i}"
    for check, _, wrongs, _ in CASES
    for i in range(len(wrongs))
]


def test_every_check_has_two_wrong_answers() -> None:
    assert all(len(wrongs) >= 2 for _, _, wrongs, _ in CASES)


@pytest.mark.parametrize("check, reference, wrongs, extra", CASES, ids=IDS)
def test_reference_solution_passes(check, reference, wrongs, extra, capsys) -> None:
    assert check(reference, *extra).passed is True
    assert "PASS" in capsys.readouterr().out


@pytest.mark.parametrize("check, wrong, extra", WRONG_CASES, ids=WRONG_IDS)
def test_wrong_answer_fails(check, wrong, extra) -> None:
    with pytest.raises(ExerciseFailed):
        check(wrong, *extra)


@pytest.mark.parametrize("check, reference, wrongs, extra", CASES, ids=IDS)
def test_placeholder_is_not_done(check, reference, wrongs, extra, capsys) -> None:
    assert check(..., *extra).passed is False
    assert "NOT DONE" in capsys.readouterr().out


def test_crossover_wants_one_integer() -> None:
    with pytest.raises(ExerciseFailed, match="one integer"):
        check_crossover([400, 401], CONFIG)
    expected = CASES[1][1]
    assert check_crossover(
        torch.tensor(expected), CONFIG
    )  # an integer tensor is one integer
    for not_whole in (
        float(expected),
        torch.tensor(float(expected)),
        str(expected),
        True,
    ):
        with pytest.raises(
            ExerciseFailed, match="crossover_t: expected one integer, got"
        ):
            check_crossover(not_whole, CONFIG)


# ex-05-config-change ----------------------------------------------------------------------------------------------

EXPLANATION = (
    "The spacing is the sampler's choice: the UNet is asked the questions it was trained on, at other "
    "timesteps. The prediction type is the model's: read as a velocity, a noise prediction points every "
    "step at the wrong clean picture."
)


def test_config_change(tiny_pipe) -> None:
    config = tiny_pipe.scheduler.config
    measured = config_change_differences(tiny_pipe, config)
    assert measured["prediction_type"] > measured["timestep_spacing"] + 1, (
        "the wrong prediction type must break the picture for the check to mean anything"
    )
    assert check_config_change(measured, EXPLANATION, tiny_pipe, config)
    swapped = dict(zip(measured, reversed(list(measured.values()))))
    wrong_answers = [
        (swapped, EXPLANATION),
        ({key: 255 * value / 100 for key, value in measured.items()}, EXPLANATION),
        ({"timestep_spacing": measured["timestep_spacing"]}, EXPLANATION),
        (measured, "the second"),  # no explanation
    ]
    for answer, explanation in wrong_answers:
        with pytest.raises(ExerciseFailed):
            check_config_change(answer, explanation, tiny_pipe, config)
    assert not check_config_change(..., EXPLANATION, tiny_pipe, config)
