"""Chapter 5's checks pass the reference solutions, fail plausible wrong answers, and say NOT DONE on ``...``."""

from __future__ import annotations

import pytest
import torch

from helpers.checks import ExerciseFailed
from helpers.checks.ch05 import check_crossover, check_linear_schedule, check_predict_epsilon, check_sigmas
from helpers.schedulers import make_scheduler
from helpers.tiny.config import SD15_SCHEDULER_CONFIG

CONFIG = make_scheduler("DDPM", SD15_SCHEDULER_CONFIG).config
ALPHAS_CUMPROD = torch.cumprod(1 - torch.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2, dim=0)


def sigmas_at(alphas_cumprod: torch.Tensor, steps: int = 10) -> torch.Tensor:
    euler = make_scheduler("Euler", CONFIG)
    euler.set_timesteps(steps)
    visited = euler.timesteps.long()
    return ((1 - alphas_cumprod[visited]) / alphas_cumprod[visited]).sqrt()


def predict_epsilon(sample, pred_original_sample, alpha_prod_t):
    return (sample - alpha_prod_t**0.5 * pred_original_sample) / (1 - alpha_prod_t) ** 0.5


def predict_epsilon_without_roots(sample, pred_original_sample, alpha_prod_t):
    return (sample - alpha_prod_t * pred_original_sample) / (1 - alpha_prod_t)


CASES = [  # check, reference answer, wrong answer, extra arguments
    (check_linear_schedule, torch.cumprod(1 - torch.linspace(0.0001, 0.02, 1000), dim=0),
     torch.cumprod(1 - torch.linspace(0.0001**0.5, 0.02**0.5, 1000) ** 2, dim=0), ()),
    (check_crossover, int(torch.nonzero((1 - ALPHAS_CUMPROD).sqrt() > ALPHAS_CUMPROD.sqrt())[0]),
     int(torch.nonzero((1 - ALPHAS_CUMPROD) > ALPHAS_CUMPROD.sqrt())[0]), (CONFIG,)),
    (check_sigmas, sigmas_at(ALPHAS_CUMPROD), ((1 - ALPHAS_CUMPROD[::100]) / ALPHAS_CUMPROD[::100]).sqrt().flip(0),
     (CONFIG,)),
    (check_predict_epsilon, predict_epsilon, predict_epsilon_without_roots, ()),
]
IDS = [case[0].__name__ for case in CASES]


@pytest.mark.parametrize("check, reference, wrong, extra", CASES, ids=IDS)
def test_reference_solution_passes(check, reference, wrong, extra, capsys) -> None:
    assert check(reference, *extra).passed is True
    assert "PASS" in capsys.readouterr().out


@pytest.mark.parametrize("check, reference, wrong, extra", CASES, ids=IDS)
def test_wrong_answer_fails(check, reference, wrong, extra) -> None:
    with pytest.raises(ExerciseFailed):
        check(wrong, *extra)


@pytest.mark.parametrize("check, reference, wrong, extra", CASES, ids=IDS)
def test_placeholder_is_not_done(check, reference, wrong, extra, capsys) -> None:
    assert check(..., *extra).passed is False
    assert "NOT DONE" in capsys.readouterr().out


def test_crossover_wants_one_integer() -> None:
    with pytest.raises(ExerciseFailed, match="one integer"):
        check_crossover([400, 401], CONFIG)
    expected = CASES[1][1]
    assert check_crossover(torch.tensor(expected), CONFIG)  # an integer tensor is one integer
    for not_whole in (float(expected), torch.tensor(float(expected)), str(expected), True):
        with pytest.raises(ExerciseFailed, match="crossover_t: expected one integer, got"):
            check_crossover(not_whole, CONFIG)
