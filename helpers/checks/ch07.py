"""Checks for chapter 7, "Image to image, and training your own Stable Diffusion"."""

from __future__ import annotations

import math
import random
from typing import Any

from diffusers.schedulers.scheduling_utils import SchedulerMixin

from ..img2img import start_step
from . import Verdict, expect, expect_number, run_check

SIGNAL_STEPS, SIGNAL_STRENGTH = 40, 0.35  # the exercise's numbers


def check_first_step(first_step: Any) -> Verdict:
    """A function (num_inference_steps, strength) -> the index of the first step img2img runs."""

    def test(fn: Any) -> None:
        expect(
            callable(fn),
            f"expected a function of (num_inference_steps, strength), got {type(fn).__name__}",
        )
        for steps in (10, 25, 50):
            for strength in (0.0, 0.3, 0.5, 0.62, 0.75, 1.0):
                got, want = fn(steps, strength), start_step(steps, strength)
                expect(
                    isinstance(got, int),
                    f"first_step({steps}, {strength}) returned {got!r}: expected an int",
                )
                expect(
                    got == want,
                    f"first_step({steps}, {strength}) returned {got}, expected {want}: "
                    f"diffusers runs int({steps} * strength) steps (rounded down) and skips the rest",
                )

    return run_check("ex-07-start-step", first_step, test)


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
        expect(
            not math.isclose(value, want**2, abs_tol=1e-4),
            "that is alpha_prod_t itself, the share of the picture's *variance*: take its square root",
        )
        expect(
            math.isclose(value, want, abs_tol=1e-4),
            f"expected {want:.4f}, got {value:.4f}: find the first "
            "timestep img2img runs, then sqrt(alphas_cumprod[t])",
        )

    return run_check("ex-07-signal-left", answer, test)


def check_drop_captions(drop_captions: Any) -> Verdict:
    """A function (captions, p, rng) -> the captions, each replaced by "" with probability p."""

    def test(fn: Any) -> None:
        expect(
            callable(fn),
            f"expected a function of (captions, p, rng), got {type(fn).__name__}",
        )
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

    return run_check("ex-07-drop-captions", drop_captions, test)
