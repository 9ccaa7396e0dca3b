"""The shapes data tiny-shapes-sd learns from: scenes, pictures, captions, the held-out split."""

from __future__ import annotations

import colorsys
import random
import re

import numpy as np
import pytest

from helpers import shapes
from helpers.shapes import (
    COLORS,
    HELD_OUT,
    POSITIONS,
    SHAPES,
    Scene,
    all_scenes,
    caption,
    layout,
    make_dataset,
    parse_caption,
    random_scene,
    render,
    shade,
)


def background_for(color: str) -> str:
    return "blue" if color != "blue" else "white"


def shape_mask(picture) -> np.ndarray:
    """True where a pixel of a plain (unseeded, flat) drawing is not the background colour."""
    array = np.asarray(picture).astype(int)
    return np.abs(array - array[0, 0]).max(axis=-1) > 30


def test_render_is_deterministic_by_seed():
    scene = Scene("star", "red", "green")
    assert np.array_equal(
        np.asarray(render(scene, seed=3)), np.asarray(render(scene, seed=3))
    )
    assert not np.array_equal(
        np.asarray(render(scene, seed=3)), np.asarray(render(scene, seed=4))
    )
    assert np.array_equal(np.asarray(render(scene)), np.asarray(render(scene)))


def test_make_dataset_is_deterministic_by_seed():
    pictures, scenes = make_dataset(16, seed=5)
    again, same_scenes = make_dataset(16, seed=5)
    other, _ = make_dataset(16, seed=6)
    assert pictures.shape == (16, 64, 64, 3) and pictures.dtype == np.uint8
    assert np.array_equal(pictures, again) and scenes == same_scenes
    assert not np.array_equal(pictures, other)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("color", COLORS)
def test_every_shape_renders_in_every_colour(shape, color):
    background = background_for(color)
    picture = render(Scene(shape, color, background), size=64)
    assert picture.size == (64, 64) and picture.mode == "RGB"
    assert (
        picture.getpixel((32, 32)) == COLORS[color]
    )  # without a seed: the plain drawing, in the base colours
    assert picture.getpixel((0, 0)) == picture.getpixel((63, 63)) == COLORS[background]


@pytest.mark.parametrize("shape", SHAPES)
def test_shapes_differ_from_each_other(shape):
    masks = {other: shape_mask(render(Scene(other, "red", "blue"))) for other in SHAPES}
    for other, mask in masks.items():
        if other != shape:
            assert (mask != masks[shape]).mean() > 0.03, (
                f"{shape} and {other} look alike"
            )


def coverage(scene: Scene, seed: int) -> np.ndarray:
    """Where a seeded render of the scene draws its shape: True where the shape covers most of a pixel."""
    where = layout(scene, random.Random(seed))
    return shapes.shape_mask(scene.shape, where.center, where.width, where.angle) > 0.5


@pytest.mark.parametrize("position", [p for p in POSITIONS if p != "center"])
def test_small_shapes_sit_in_their_corner_and_stay_large_enough(position):
    for seed in range(8):
        rows, cols = np.nonzero(
            coverage(Scene("circle", "yellow", "black", "small", position), seed)
        )
        vertical, horizontal = position.split()
        assert (rows.mean() < 24) == (vertical == "top") and (cols.mean() < 24) == (
            horizontal == "left"
        )
        assert (
            cols.max() - cols.min() + 1 >= 0.3 * 64
        )  # an 8x8 latent can still carry the outline


def test_big_shapes_are_bigger_than_small_ones():
    for seed in range(8):
        big, small = (
            coverage(Scene("square", "red", "blue", size), seed).sum()
            for size in ("big", "small")
        )
        assert big > 1.8 * small


def test_what_a_caption_leaves_open_varies_from_seed_to_seed():
    scene = Scene("square", "red", "blue")
    masks = [coverage(scene, seed) for seed in range(16)]
    areas = [mask.sum() for mask in masks]
    centres = np.array(
        [np.argwhere(mask).mean(axis=0) for mask in masks]
    )  # (16, 2): row, column
    assert max(areas) > 1.8 * min(areas), "an unsaid size should vary"
    assert np.ptp(centres, axis=0).min() > 16, "an unsaid place should vary"
    corners = np.stack(
        [
            np.asarray(render(scene, seed=seed), dtype=np.float32)[0, 0]
            for seed in range(16)
        ]
    )
    assert np.ptp(corners, axis=0).max() > 40, (
        "the background's shade and light should vary"
    )


def test_every_shade_of_a_colour_is_nearer_its_own_hue_than_any_other():
    rng = random.Random(0)
    hues = {
        name: colorsys.rgb_to_hsv(*(c / 255 for c in rgb))[0] * 360
        for name, rgb in COLORS.items()
        if name not in ("white", "black")
    }
    for name, _hue in hues.items():
        for _ in range(50):
            shaded = colorsys.rgb_to_hsv(*(shade(name, rng) / 255))[0] * 360
            distance = {
                other: min(abs(shaded - h), 360 - abs(shaded - h))
                for other, h in hues.items()
            }
            assert min(distance, key=distance.get) == name


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_plain_captions_parse_back_to_their_scene(split):
    scenes = all_scenes(split)
    assert scenes
    for scene in scenes:
        assert parse_caption(caption(scene)) == scene


def test_caption_wordings_are_true_of_their_scene():
    rng = random.Random(0)
    wordings = set()
    for scene in [random_scene(rng) for _ in range(60)]:
        for _ in range(4):
            text = caption(scene, rng)
            wordings.add(
                re.sub(
                    r"\b(" + "|".join(COLORS) + "|" + "|".join(SHAPES) + r")\b",
                    "_",
                    text,
                )
            )
            parsed = parse_caption(text)
            assert (parsed.shape, parsed.color, parsed.background, parsed.position) == (
                scene.shape,
                scene.color,
                scene.background,
                scene.position,
            ), text
            assert parsed.size in (None, scene.size), text
            assert not re.search(r"\ba [aeiou]", text), f"wrong article in {text!r}"
    assert len(wordings) >= 8  # the grammar varies the wording, not only the words


def test_captions_read_naturally():
    assert (
        caption(Scene("circle", "red", "blue")) == "a red circle on a blue background"
    )
    assert caption(Scene("star", "green", "black", "small", "top left")) == (
        "a small green star in the top left corner on a black background"
    )
    assert (
        caption(Scene("cross", "orange", "white"))
        == "an orange cross on a white background"
    )
    assert parse_caption("A big YELLOW square, black background") == Scene(
        "square", "yellow", "black", "big"
    )
    assert parse_caption("a yellow square on black") == Scene(
        "square", "yellow", "black"
    )  # size and place unsaid


def test_held_out_combinations_are_a_tenth_and_never_in_training():
    combinations = {(c, s, b) for c in COLORS for s in SHAPES for b in COLORS if c != b}
    assert 0.05 < len(HELD_OUT) / len(combinations) < 0.15
    assert combinations > HELD_OUT
    _, scenes = make_dataset(500, seed=1, split="train")
    rng = random.Random(2)
    scenes += [random_scene(rng) for _ in range(5000)] + all_scenes("train")
    assert not {(s.color, s.shape, s.background) for s in scenes} & HELD_OUT
    assert {(s.color, s.shape, s.background) for s in all_scenes("heldout")} == HELD_OUT


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Scene("hexagon", "red", "blue"), "unknown shape 'hexagon'"),
        (lambda: Scene("circle", "pink", "blue"), "unknown colour 'pink'"),
        (lambda: Scene("circle", "red", "red"), "both red"),
        (
            lambda: Scene("circle", "red", "blue", "big", "top left"),
            "only small shapes go in a corner",
        ),
        (lambda: Scene("circle", "red", "blue", "huge"), "unknown size 'huge'"),
        (lambda: parse_caption("a red circle"), "needs one shape .* and two colours"),
        (
            lambda: parse_caption("a red circle and a blue star on green"),
            "needs one shape",
        ),
        (lambda: render("a picture of a cat"), "cannot draw 'a picture of a cat'"),
        (lambda: all_scenes("test"), "split must be 'train' or 'heldout'"),
    ],
)
def test_bad_scenes_and_captions_say_what_is_wrong(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_parse_caption_wants_a_string():
    with pytest.raises(TypeError, match="expected a caption string"):
        parse_caption(None)
