"""Checks for chapter 7, "Image to image, and training your own Stable Diffusion"."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import torch
from diffusers import (
    DDIMScheduler,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from PIL import Image

from ..compare import mean_pixel_diff
from ..img2img import start_step
from . import (
    Verdict,
    expect,
    expect_near,
    expect_number,
    expect_plain_number,
    quiet_copy,
    run_check,
    run_function_check,
    run_open_question,
)

SIGNAL_STEPS, SIGNAL_STRENGTH = 40, 0.35  # the exercise's numbers
ONE_PROMPT, ONE_STEPS = "a yellow star on a purple background", 10


def library_first_step(num_inference_steps: int, strength: float) -> int:
    """The index of the first step ``StableDiffusionImg2ImgPipeline.get_timesteps`` keeps, asked of the library
    itself (with a first-order scheduler, so that positions in its timesteps are steps)."""
    scheduler = DDIMScheduler()
    scheduler.set_timesteps(num_inference_steps)
    holder = SimpleNamespace(scheduler=scheduler)  # all get_timesteps reads of self
    _, steps_run = StableDiffusionImg2ImgPipeline.get_timesteps(
        holder, num_inference_steps, strength, "cpu"
    )
    return num_inference_steps - steps_run


def check_first_step(first_step: Any) -> Verdict:
    """A function (num_inference_steps, strength) -> the index of the first step img2img runs."""

    def test(fn: Any) -> None:
        for steps in (10, 25, 50):
            for strength in (0.0, 0.3, 0.5, 0.62, 0.75, 1.0):
                got, want = fn(steps, strength), library_first_step(steps, strength)
                expect(
                    isinstance(got, int),
                    f"first_step({steps}, {strength}) returned {got!r}: expected an int",
                )
                expect(
                    got == want,
                    f"first_step({steps}, {strength}) returned {got}, expected {want}: "
                    f"diffusers runs int({steps} * strength) steps (rounded down) and skips the rest",
                )

    return run_function_check(
        "ex-07-start-step",
        first_step,
        test,
        "a function of (num_inference_steps, strength)",
    )


def signal_left(
    scheduler: SchedulerMixin, num_inference_steps: int, strength: float
) -> float:
    """sqrt(alpha_prod_t) at img2img's first timestep: the share of the picture's amplitude left in the noisy latents."""
    fresh = type(scheduler).from_config(
        scheduler.config
    )  # leave the caller's scheduler as it was
    fresh.set_timesteps(num_inference_steps)
    timestep = fresh.timesteps[start_step(num_inference_steps, strength) * fresh.order]
    return float(fresh.alphas_cumprod[int(timestep)].sqrt())


def check_signal_left(answer: Any, scheduler: SchedulerMixin) -> Verdict:
    """The picture's share in the noisy latents at strength 0.35 of 40 steps, for this scheduler."""

    def test(value: Any) -> None:
        expect_number(value, "a number (use `.item()` on a tensor)")
        want = signal_left(scheduler, SIGNAL_STEPS, SIGNAL_STRENGTH)
        variance_share = (
            want**2,
            "that is alpha_prod_t itself, the share of the picture's *variance*: take its square root",
        )
        expect_near(
            value,
            want,
            f"expected {want:.4f}, got {value:.4f}: find the first "
            "timestep img2img runs, then sqrt(alphas_cumprod[t])",
            [variance_share],
            abs_tol=1e-4,
        )

    return run_check("ex-07-signal-left", answer, test)


def check_drop_captions(drop_captions: Any) -> Verdict:
    """A function (captions, p, rng) -> the captions, each replaced by "" with probability p."""

    def test(fn: Any) -> None:
        captions = [f"caption {i}" for i in range(4000)]
        dropped = fn(captions, 0.25, random.Random(0))
        expect(
            isinstance(dropped, list) and len(dropped) == len(captions),
            f"expected a list of {len(captions)} captions, got {type(dropped).__name__}",
        )
        expect(
            all(d in ("", c) for d, c in zip(dropped, captions)),
            'each caption must stay as it is, in its place, or become the empty string ""',
        )
        share = dropped.count("") / len(captions)
        expect(
            0.22 <= share <= 0.28,
            f"with p=0.25 about a quarter should be empty, but {share:.0%} are",
        )
        expect(
            fn(captions, 0.25, random.Random(0)) == dropped,
            "the same rng seed gave other drops: draw every random number from `rng`, not from `random`",
        )
        expect(
            fn(captions, 0.25, random.Random(1)) != dropped,
            "another rng seed gave the same drops: the choice must come from `rng`, one draw per caption",
        )
        expect(
            fn(captions[:50], 0.0, random.Random(1)) == captions[:50],
            "with p=0 no caption may be dropped",
        )
        expect(
            fn(captions[:50], 1.0, random.Random(1)) == [""] * 50,
            "with p=1 every caption must be dropped",
        )

    return run_function_check(
        "ex-07-drop-captions", drop_captions, test, "a function of (captions, p, rng)"
    )


def strength_one_difference(
    pipe: StableDiffusionPipeline, init_image: Image.Image
) -> float:
    """Mean pixel difference between the library's image to image at strength 1 from ``init_image`` and its text to
    image, for ``ONE_PROMPT``, seed 0 and ``ONE_STEPS`` steps of fresh copies of the pipe's scheduler."""

    def fresh() -> SchedulerMixin:
        return type(pipe.scheduler).from_config(pipe.scheduler.config)

    def seeded() -> torch.Generator:
        return torch.Generator().manual_seed(0)

    edited = quiet_copy(pipe, StableDiffusionImg2ImgPipeline, scheduler=fresh())(
        ONE_PROMPT,
        image=init_image,
        strength=1.0,
        num_inference_steps=ONE_STEPS,
        generator=seeded(),
    ).images[0]
    drawn = quiet_copy(pipe, scheduler=fresh())(
        ONE_PROMPT, num_inference_steps=ONE_STEPS, generator=seeded()
    ).images[0]
    return mean_pixel_diff([edited], [drawn])


def check_strength_one(
    strength_one_diff: Any,
    explanation: Any,
    pipe: StableDiffusionPipeline,
    init_image: Image.Image,
) -> Verdict:
    """The mean pixel difference image to image at strength 1 makes against text to image; an explanation."""

    def test(value: Any) -> None:
        expect_plain_number(value, "a mean pixel difference (a float)")
        want = strength_one_difference(pipe, init_image)
        expect(
            abs(value - want) <= 0.5,
            f"strength_one_diff is {value:.2f}, expected {want:.2f}: {ONE_PROMPT!r}, "
            f"seed 0 for each call, {ONE_STEPS} steps, img2img from init_image at "
            "strength 1.0 against generate, the mean absolute pixel difference",
        )

    return run_open_question("ex-07-strength-one", strength_one_diff, explanation, test)
