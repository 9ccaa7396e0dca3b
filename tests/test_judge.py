"""The judge reads what a tiny-shapes-sd picture shows from its pixels: colours under any light, the shape, where it
sits and how big it is; and it says so when a picture shows something else."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image, ImageFilter

from helpers import shapes
from helpers.judge import assert_shows, judge, judge_many, name_color

SCENES = [
    "a red circle on a blue background",
    "a small yellow star in the top left corner on an orange background",
    "a small black cross in the bottom right corner on a white background",
    "a big purple triangle on a green background",
    "a white square on a black background",
]


@pytest.mark.parametrize("text", SCENES)
def test_the_judge_reads_rendered_scenes(text: str) -> None:
    seen = judge_many([shapes.render(text, seed=seed) for seed in range(4)])
    assert sum(j.shows(text) for j in seen) >= 3, [
        j.says() for j in seen
    ]  # a judge of shapes is right ~98% of the time


def test_the_judge_names_shapes_and_colours_of_random_renders() -> None:
    pictures, scenes = shapes.make_dataset(300, seed=11)
    seen = judge_many(list(pictures))
    right = sum(
        j.shows(shapes.Scene(s.shape, s.color, s.background))
        for j, s in zip(seen, scenes)
    )
    assert right / len(scenes) >= 0.97


def test_a_wrong_picture_is_not_what_was_asked() -> None:
    red_circle = judge(shapes.render("a red circle on a blue background", seed=0))
    assert not red_circle.shows("a red square on a blue background")
    assert not red_circle.shows("a blue circle on a red background")
    small_corner = judge(
        shapes.render(
            "a small red circle in the top right corner on a blue background", seed=0
        )
    )
    assert small_corner.position == "top right" and small_corner.size == "small"
    assert not small_corner.shows(
        "a small red circle in the top left corner on a blue background"
    )


def test_a_plain_picture_shows_no_shape() -> None:
    plain = Image.new("RGB", (64, 64), shapes.COLORS["green"])
    seen = judge(plain)
    assert (seen.color, seen.shape, seen.background) == (None, None, "green")
    assert seen.says() == "a plain green picture"


@pytest.mark.parametrize("name", list(shapes.COLORS))
def test_colour_names_do_not_change_with_light(name: str) -> None:
    rng = random.Random(0)
    for _ in range(20):
        rgb = (
            shapes.shade(name, rng)
            * rng.uniform(*shapes.EXPOSURE)
            * rng.uniform(0.8, 1.2)
        )
        assert (
            name_color(rgb * min(1.0, 255 / rgb.max())) == name
        )  # dimmed where bright, as render does


def test_the_judge_wants_a_picture() -> None:
    with pytest.raises(TypeError, match="expected a PIL picture or a uint8 array"):
        judge(np.zeros((64, 64), dtype=np.float32))


def test_a_figure_that_contradicts_its_claim_fails(
    capsys: pytest.CaptureFixture,
) -> None:
    red_circle = shapes.render("a red circle on a blue background", seed=0)
    assert_shows([red_circle], ["a red circle on a blue background"], is_tiny=True)
    assert "1 of 1 pictures show their caption." in capsys.readouterr().out
    with pytest.raises(AssertionError, match="only 0 of 1 pictures show their caption"):
        assert_shows([red_circle], ["a green star on a white background"], is_tiny=True)
    with pytest.raises(AssertionError, match="MISS: asked 'a blue circle"):
        assert_shows(
            [red_circle, red_circle],
            ["a red circle on a blue background", "a blue circle on a red background"],
            is_tiny=True,
        )
    assert_shows(
        [red_circle, red_circle],
        ["a red circle on a blue background", "a blue circle on a red background"],
        is_tiny=True,
        at_least=1,
    )
    printed = capsys.readouterr().out
    assert "1 of 2 pictures show their caption; it read 'a big red circle" in printed
    assert "for 'a blue circle on a red background'." in printed


def test_the_judge_stands_aside_for_the_real_model(
    capsys: pytest.CaptureFixture,
) -> None:
    assert (
        assert_shows(
            [Image.new("RGB", (512, 512))],
            ["a red circle on a blue background"],
            is_tiny=False,
        )
        is None
    )
    assert "tiny-shapes-sd's pictures only" in capsys.readouterr().out


def test_a_white_shape_on_black_stands_out_from_a_dark_tinted_halo() -> None:
    """A generated white star on black came with a wide, dark red rim on a slightly green-blue black; divided by
    their brightness, rim and background looked nearly as far apart as star and background, the rim outnumbered the
    star, and the judge saw a plain black picture."""
    text = "a white star on a black background"
    picture = shapes.render(text, seed=0)
    star = np.asarray(picture.convert("L")) > 128  # (H, W)
    rim = (
        np.asarray(Image.fromarray(star).convert("L").filter(ImageFilter.MaxFilter(15)))
        > 0
    ) & ~star
    pixels = np.asarray(picture).copy()
    pixels[~star] = (24, 30, 29)  # the generated picture's black
    pixels[rim] = (24, 10, 8)  # and its rim
    assert rim.sum() > star.sum()
    assert judge(Image.fromarray(pixels)).shows(text)
