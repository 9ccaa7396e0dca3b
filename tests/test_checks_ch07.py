"""Chapter 7's checks pass the reference solutions, fail plausible wrong answers and say NOT DONE on ``...``."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from diffusers import PNDMScheduler

from helpers.checks import ExerciseFailed
from helpers.checks.ch07 import (
    check_drop_captions,
    check_first_step,
    check_signal_left,
    check_strength_one,
    library_first_step,
    strength_one_difference,
)
from helpers.images import load_sample_image
from helpers.img2img import start_step
from helpers.sd15 import sd15_config


@pytest.fixture
def scheduler() -> PNDMScheduler:
    return PNDMScheduler.from_config(sd15_config("scheduler"))


def test_not_done_prints(
    expect_not_done: Callable[..., None], scheduler: PNDMScheduler
) -> None:
    expect_not_done(
        check_first_step(...),
        check_signal_left(..., scheduler),
        check_drop_captions(...),
    )


def test_first_step() -> None:
    def first_step(num_inference_steps: int, strength: float) -> int:
        return num_inference_steps - min(
            int(num_inference_steps * strength), num_inference_steps
        )

    assert check_first_step(first_step)
    with pytest.raises(ExerciseFailed, match="rounded down"):
        check_first_step(
            lambda steps, strength: round(steps * (1 - strength))
        )  # rounds instead of flooring
    with pytest.raises(ExerciseFailed, match="rounded down"):
        check_first_step(
            lambda steps, strength: int(steps * (1 - strength))
        )  # floors the skipped steps
    with pytest.raises(ExerciseFailed, match="function"):
        check_first_step(10)


def test_signal_left(scheduler: PNDMScheduler) -> None:
    scheduler.set_timesteps(40)
    t = scheduler.timesteps[start_step(40, 0.35) * scheduler.order]
    alpha_prod_t = scheduler.alphas_cumprod[t].item()
    scheduler.set_timesteps(7)  # the check must not depend on the scheduler's state
    assert check_signal_left(alpha_prod_t**0.5, scheduler)
    with pytest.raises(ExerciseFailed, match="square root"):
        check_signal_left(alpha_prod_t, scheduler)
    with pytest.raises(
        ExerciseFailed, match="expected"
    ):  # timestep strength * 1000, not the scheduler's
        check_signal_left(scheduler.alphas_cumprod[350].sqrt().item(), scheduler)
    with pytest.raises(ExerciseFailed, match="number"):
        check_signal_left(
            scheduler.alphas_cumprod[t].sqrt(), scheduler
        )  # a tensor, not a float
    assert len(scheduler.timesteps) == 8, "the check changed the scheduler it was given"


def test_drop_captions() -> None:
    def drop_captions(captions: list[str], p: float, rng: random.Random) -> list[str]:
        return ["" if rng.random() < p else caption for caption in captions]

    assert check_drop_captions(drop_captions)
    with pytest.raises(
        ExerciseFailed, match="quarter"
    ):  # keeps with probability p instead of dropping
        check_drop_captions(
            lambda captions, p, rng: ["" if rng.random() >= p else c for c in captions]
        )
    with pytest.raises(ExerciseFailed, match="in its place"):  # shuffles the captions
        check_drop_captions(
            lambda captions, p, rng: rng.sample(captions, len(captions))
        )
    with pytest.raises(ExerciseFailed, match="list"):
        check_drop_captions(lambda captions, p, rng: None)


def test_drop_captions_must_draw_from_rng() -> None:
    """Drops that ignore ``rng`` (the global ``random``, or a generator of the function's own) are not reproducible."""
    with pytest.raises(ExerciseFailed, match="the same rng seed gave other drops"):
        check_drop_captions(
            lambda captions, p, rng: [
                "" if random.random() < p else c for c in captions
            ]
        )

    def drop_with_a_seed_of_its_own(
        captions: list[str], p: float, rng: random.Random
    ) -> list[str]:
        own = random.Random(7)
        return ["" if own.random() < p else caption for caption in captions]

    with pytest.raises(ExerciseFailed, match="another rng seed gave the same drops"):
        check_drop_captions(drop_with_a_seed_of_its_own)


def test_first_step_is_the_librarys() -> None:
    """The check asks StableDiffusionImg2ImgPipeline.get_timesteps itself, and agrees with helpers' start_step."""
    assert all(
        library_first_step(steps, strength) == start_step(steps, strength)
        for steps in (10, 25, 50)
        for strength in (0.0, 0.3, 0.62, 1.0)
    )


# ex-07-strength-one -----------------------------------------------------------------------------------------------

EXPLANATION = (
    "The generator draws the VAE's sample before the noise, so the noise differs from text to image's, and "
    "the first timestep still holds a few percent of the start picture; both move the picture."
)


def test_strength_one(tiny_pipe) -> None:
    init_image = load_sample_image("a red circle on a blue background", size=64)
    difference = strength_one_difference(tiny_pipe, init_image)
    assert difference > 1, "the two pictures must differ for the check to mean anything"
    assert check_strength_one(difference, EXPLANATION, tiny_pipe, init_image)
    wrong_answers = [
        (0.0, EXPLANATION),  # "strength 1 is text to image"
        (difference * 255 / 100, EXPLANATION),  # another scale
        ("large", EXPLANATION),
        (difference, "the noise"),  # no explanation
    ]
    for answer, explanation in wrong_answers:
        with pytest.raises(ExerciseFailed):
            check_strength_one(answer, explanation, tiny_pipe, init_image)
    assert not check_strength_one(..., EXPLANATION, tiny_pipe, init_image)
