"""Checks for chapter 0, "Text to image in three lines"."""

from __future__ import annotations

import inspect
import itertools
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..compare import max_pixel_diff, mean_pixel_diff
from ..latents import vae_scale_factor
from ..memory import parameter_count
from . import (
    Verdict,
    expect,
    expect_number,
    expect_numbers,
    expect_picture,
    expect_same_picture,
    quiet_copy,
    run_check,
    run_open_question,
)


def native_size(pipe: Any) -> int:
    """The picture side the pipeline makes by default: the UNet's sample size times the VAE's scale factor."""
    return pipe.unet.config.sample_size * vae_scale_factor(pipe.vae)


STAR_PROMPT, STAR_SEED = (
    "a yellow star on a purple background",
    7,
)  # the exercise's picture
GRID_ROWS, GRID_COLS = 3, 2  # three prompts, two pictures each
DECODE_PROMPT, DECODE_SEED = "a red circle on a blue background", 0
SEED_PROMPTS = (
    "a red circle on a blue background",
    "a yellow star on a purple background",
)
EXERCISE_STEPS = 10  # enough steps for a picture, few enough for a quick check


def default_steps(pipe: Any) -> int:
    """The number of denoising steps a call of ``pipe`` takes when none is given (50 for Stable Diffusion)."""
    return inspect.signature(pipe.__call__).parameters["num_inference_steps"].default


def check_same_seed(
    star_pictures: Any, pipe: Any, num_inference_steps: int | None = None
) -> Verdict:
    """Two pictures of ``STAR_PROMPT`` made in two calls from seed 7: identical pixel for pixel, and the picture the
    pipeline makes from that seed (with its default number of steps unless told)."""

    def test(pictures: Any) -> None:
        expect(
            isinstance(pictures, (list, tuple)) and len(pictures) == 2,
            f"expected a list of two pictures, got {type(pictures).__name__}",
        )
        expect(
            all(isinstance(p, Image.Image) for p in pictures),
            "both pictures must be PIL images (`.images[0]`)",
        )
        side = native_size(pipe)
        expect(
            all(p.size == (side, side) for p in pictures),
            f"expected pictures of {side}x{side}, got {[p.size for p in pictures]}",
        )
        expect(
            pictures[0] is not pictures[1],
            "the two entries are one and the same object: make each in its own call",
        )
        expect(
            np.array_equal(np.asarray(pictures[0]), np.asarray(pictures[1])),
            "the two pictures differ: seed a fresh generator with the same seed for each call",
        )
        steps = num_inference_steps or default_steps(pipe)
        expected = quiet_copy(pipe)(
            STAR_PROMPT,
            num_inference_steps=steps,
            generator=torch.Generator("cpu").manual_seed(STAR_SEED),
        ).images[0]
        difference = max_pixel_diff([pictures[0]], [expected])
        expect(
            difference <= 2,
            f"these are not the picture of {STAR_PROMPT!r} from a CPU generator seeded with "
            f"{STAR_SEED} ({steps} steps): pixels differ from it by up to {difference} of 255",
        )

    return run_check("ex-00-same-seed", star_pictures, test)


def check_prompt_rows(prompt_rows: Any, pipe: Any) -> Verdict:
    """A grid of three prompts times two pictures, one row per prompt."""

    def test(grid: Any) -> None:
        expect(
            isinstance(grid, Image.Image),
            f"expected the PIL picture `image_grid` returns, got {type(grid).__name__}",
        )
        side = native_size(pipe)
        expected = (GRID_COLS * side, GRID_ROWS * side)
        expect(
            grid.size != (3 * side, 2 * side),
            "the grid has 2 rows of 3: give `image_grid` rows=3, so each prompt gets its own row",
        )
        expect(
            grid.size == expected,
            f"expected 3 rows of 2 pictures of {side}x{side}, a {expected[0]}x{expected[1]} grid; got {grid.size}",
        )
        tiles = [
            np.asarray(grid.crop((c * side, r * side, (c + 1) * side, (r + 1) * side)))
            for r in range(GRID_ROWS)
            for c in range(GRID_COLS)
        ]
        expect(
            all(tile.std() > 1 for tile in tiles),
            "a picture of the grid is one flat colour: paste the pipeline's pictures, two per prompt",
        )
        for i, j in itertools.combinations(range(len(tiles)), 2):
            expect(
                not np.array_equal(tiles[i], tiles[j]),
                f"pictures {i} and {j} of the grid are the same picture: one call with num_images_per_prompt=2 "
                "draws new noise for each",
            )

    return run_check("ex-00-grid", prompt_rows, test)


def check_unet_share(unet_share: Any, pipe: Any) -> Verdict:
    """The UNet's parameters as a fraction of all the pipeline's parameters."""

    def test(share: Any) -> None:
        expect_number(share)
        expect(
            0 < share < 1,
            f"expected a fraction between 0 and 1 (not a percentage), got {share}",
        )
        total = sum(parameter_count(part) for part in pipe.components.values())
        expected = parameter_count(pipe.unet) / total
        expect(
            abs(share - expected) < 1e-3,
            f"got {share:.4f}: divide the UNet's parameters by those of every component together",
        )

    return run_check("ex-00-unet-share", unet_share, test)


def seeded_picture(pipe: Any, prompt: str, seed: int, **kwargs: Any) -> Any:
    """The library's first output for ``prompt`` from a CPU generator seeded with ``seed``, in EXERCISE_STEPS steps."""
    return quiet_copy(pipe)(
        prompt,
        num_inference_steps=EXERCISE_STEPS,
        generator=torch.Generator("cpu").manual_seed(seed),
        **kwargs,
    ).images[0]


def check_decode_by_hand(decoded_by_hand: Any, pipe: Any) -> Verdict:
    """The latents of ``DECODE_PROMPT`` (seed 0, 10 steps) decoded by hand: the picture ``pipe`` returns itself."""

    def test(picture: Any) -> None:
        expect_picture(picture, "decoded_by_hand")
        expect_same_picture(
            picture,
            seeded_picture(pipe, DECODE_PROMPT, DECODE_SEED),
            "decoded_by_hand",
            "the pipeline's picture",
            "divide the latents by vae.config.scaling_factor before vae.decode, then map "
            "[-1, 1] to [0, 1] with x / 2 + 0.5, clamp, and scale to 0-255",
        )

    return run_check("ex-00-decode-by-hand", decoded_by_hand, test)


def check_seed_or_prompt(seed_or_prompt: Any, explanation: Any, pipe: Any) -> Verdict:
    """{"seed": mean difference between two seeds' pictures, "prompt": between two prompts' pictures}, and an
    explanation of what each decides."""

    def test(measured: Any) -> None:
        expect_numbers(
            measured,
            ("seed", "prompt"),
            "seed_or_prompt",
            "a mean pixel difference (a float)",
            plain=True,
        )
        first, second = SEED_PROMPTS
        start = seeded_picture(pipe, first, 0)
        want = {
            "seed": mean_pixel_diff([start], [seeded_picture(pipe, first, 1)]),
            "prompt": mean_pixel_diff([start], [seeded_picture(pipe, second, 0)]),
        }
        for key, value in want.items():
            expect(
                abs(measured[key] - value) <= 0.5,
                f"seed_or_prompt[{key!r}] is {measured[key]:.2f}, expected {value:.2f}: the "
                f"mean absolute pixel difference, {EXERCISE_STEPS} steps, CPU generators "
                f"(seeds 0 and 1 of {first!r}; {first!r} and {second!r} at seed 0)",
            )

    return run_open_question("ex-00-seed-or-prompt", seed_or_prompt, explanation, test)
