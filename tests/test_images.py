"""Pictures in and out: preprocess (from helpers.latents), to_pil, numpy_to_pil, image_grid, show_images, load_sample_image."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from helpers import (
    image_grid,
    load_sample_image,
    numpy_to_pil,
    preprocess,
    show_images,
    to_pil,
    vae_scale_factor,
)
from helpers.shapes import COLORS


def gradient(width: int = 24, height: int = 16) -> Image.Image:
    """An RGB picture whose every pixel differs from its neighbours, so a crop or a channel swap shows."""
    y, x = np.mgrid[0:height, 0:width]
    array = np.stack([x * 10 % 256, y * 15 % 256, (x + y) * 5 % 256], axis=-1).astype(
        np.uint8
    )
    return Image.fromarray(array)


def test_preprocess_rounds_down_to_the_vae_scale_factor(sd_vae):
    pixels = preprocess(Image.new("RGB", (516, 484), "white"), sd_vae)
    assert vae_scale_factor(sd_vae) == 8
    assert pixels.shape == (1, 3, 480, 512)
    assert pixels.dtype == torch.float32


def test_preprocess_maps_colours_to_minus_one_one_in_rgb_order():
    array = np.zeros((8, 16, 3), dtype=np.uint8)
    array[:, :8, 0] = 255  # left half red, right half black
    pixels = preprocess(array, 8)[0]  # (3, H, W)
    assert torch.all(pixels[0, :, :8] == 1) and torch.all(pixels[1:, :, :8] == -1)
    assert torch.all(pixels[:, :, 8:] == -1)


def test_preprocess_keeps_the_top_left_when_it_crops():
    picture = gradient(27, 19)
    expected = np.asarray(picture)[:16, :24].astype(np.float32) / 127.5 - 1
    pixels = preprocess(picture, 8)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(pixels, expected)


@pytest.mark.parametrize(
    "kind", ["pil", "path", "str path", "array", "rgba pil", "rgba array"]
)
def test_preprocess_accepts_every_kind_of_colour_picture(kind, tmp_path: Path):
    picture = gradient()
    file = tmp_path / "picture.png"
    picture.save(file)
    inputs = {
        "pil": picture,
        "path": file,
        "str path": str(file),
        "array": np.asarray(picture),
        "rgba pil": picture.convert("RGBA"),
        "rgba array": np.asarray(picture.convert("RGBA")),
    }
    assert torch.equal(preprocess(inputs[kind], 8), preprocess(picture, 8))


@pytest.mark.parametrize(
    "greyscale", [Image.new("L", (16, 8), 51), np.full((8, 16), 51, dtype=np.uint8)]
)
def test_preprocess_turns_greyscale_into_three_equal_channels(greyscale):
    pixels = preprocess(greyscale, 8)
    assert pixels.shape == (1, 3, 8, 16)
    assert torch.allclose(pixels, torch.full_like(pixels, 51 / 127.5 - 1))


@pytest.mark.parametrize(
    ("image", "factor", "error", "message"),
    [
        (42, 8, TypeError, "expected a PIL image"),
        (np.zeros((8, 8, 3), dtype=np.float32), 8, ValueError, "uint8"),
        (np.zeros((8, 8, 2), dtype=np.uint8), 8, ValueError, r"\(H, W, 3\)"),
        (Image.new("RGB", (7, 30)), 8, ValueError, "smaller than the scale factor 8"),
        (Image.new("RGB", (8, 8)), 0, ValueError, "positive integer"),
        (Image.new("RGB", (8, 8)), "vae", TypeError, "expected a VAE"),
        ("no/such/picture.png", 8, FileNotFoundError, "no image file"),
    ],
)
def test_preprocess_rejects_bad_input_clearly(image, factor, error, message):
    with pytest.raises(error, match=message):
        preprocess(image, factor)


def test_vae_scale_factor_comes_from_the_config():
    three_blocks = SimpleNamespace(
        config=SimpleNamespace(block_out_channels=(32, 64, 64))
    )
    assert vae_scale_factor(three_blocks) == 4
    with pytest.raises(TypeError, match="block_out_channels"):
        vae_scale_factor(torch.nn.Linear(2, 2))


def test_to_pil_gives_rgb():
    assert to_pil(Image.new("RGBA", (4, 4))).mode == "RGB"
    assert to_pil(np.zeros((4, 4), dtype=np.uint8)).mode == "RGB"


def test_numpy_to_pil_scales_and_rounds_floats():
    """Floats a hair outside [0, 1] (float arithmetic) are clipped; further out they are refused (test_bad_input)."""
    batch = np.zeros((2, 2, 3, 3), dtype=np.float32)
    batch[0, 0, 0] = [1.0, 0.5, 0.25]
    batch[1, 0, 0] = [1.00001, -0.00001, 0.0]
    first, second = numpy_to_pil(batch)
    assert first.size == (3, 2) and first.mode == "RGB"
    assert first.getpixel((0, 0)) == (255, 128, 64)
    assert second.getpixel((0, 0)) == (255, 0, 0)


def test_numpy_to_pil_takes_integer_pixels_of_any_integer_dtype():
    array = np.asarray(gradient()).astype(np.int64)
    assert np.array_equal(np.asarray(numpy_to_pil(array)[0]), array)


def test_numpy_to_pil_keeps_uint8_and_takes_a_single_picture():
    array = np.asarray(gradient())
    (picture,) = numpy_to_pil(array)
    assert np.array_equal(np.asarray(picture), array)


@pytest.mark.parametrize(
    ("images", "error"),
    [
        ([np.zeros((4, 4, 3))], TypeError),
        (np.zeros((4, 4)), ValueError),
        (np.zeros((1, 4, 4, 4)), ValueError),
    ],
)
def test_numpy_to_pil_rejects_bad_input(images, error):
    with pytest.raises(error, match="expected"):
        numpy_to_pil(images)


def squares(n: int, size: tuple[int, int] = (10, 8)) -> list[Image.Image]:
    """n pictures of one colour each, in the order of helpers.shapes.COLORS."""
    return [Image.new("RGB", size, colour) for colour in list(COLORS.values())[:n]]


@pytest.mark.parametrize(
    ("n", "rows", "cols"), [(1, 1, 1), (4, 2, 2), (5, 2, 3), (7, 3, 3), (8, 3, 3)]
)
def test_image_grid_is_near_square_by_default(n, rows, cols):
    assert image_grid(squares(n)).size == (cols * 10, rows * 8)


def test_image_grid_places_pictures_row_by_row_and_leaves_the_rest_white():
    images = squares(5)
    grid = image_grid(images, rows=2)  # 3 columns
    assert grid.size == (30, 16)
    for i, image in enumerate(images):
        assert grid.getpixel(((i % 3) * 10 + 5, (i // 3) * 8 + 4)) == image.getpixel(
            (0, 0)
        )
    assert grid.getpixel((25, 12)) == (255, 255, 255)


def test_image_grid_follows_rows_or_cols():
    assert image_grid(squares(5), rows=1).size == (50, 8)
    assert image_grid(squares(5), cols=2).size == (20, 24)


@pytest.mark.parametrize(
    ("images", "rows", "cols", "error", "message"),
    [
        (squares(5), 2, 2, ValueError, "holds 4 images, but 5"),
        ([], None, None, ValueError, "no images"),
        (squares(1) + squares(1, (4, 4)), None, None, ValueError, "same size"),
        (
            [np.zeros((8, 10, 3), dtype=np.uint8)],
            None,
            None,
            TypeError,
            "image_grid takes PIL images, got ndarray",
        ),
    ],
)
def test_image_grid_rejects_bad_input_clearly(images, rows, cols, error, message):
    with pytest.raises(error, match=message):
        image_grid(images, rows=rows, cols=cols)


def test_show_images_titles_the_figure_and_each_picture():
    # miniai style: shown at once, nothing returned; the figure stays current
    assert (
        show_images(squares(3), titles=["a", "b", "c"], title="Three colours", cols=2)
        is None
    )
    figure = plt.gcf()
    try:
        assert figure._suptitle.get_text() == "Three colours"
        assert [ax.get_title() for ax in figure.axes] == ["a", "b", "c", ""]
        assert [len(ax.images) for ax in figure.axes] == [1, 1, 1, 0]
    finally:
        plt.close(figure)


def test_show_images_wraps_long_captions_to_the_picture_width_and_keeps_line_breaks():
    show_images(
        squares(2),
        titles=["before\na crimson square on a green background", "b"],
        size=2.2,
    )
    figure = plt.gcf()
    try:
        assert (
            figure.axes[0].get_title()
            == "before\na crimson square on a green\nbackground"
        )
        assert figure.axes[1].get_title() == "b"
    finally:
        plt.close(figure)


def test_show_images_rejects_mismatched_titles():
    with pytest.raises(ValueError, match="3 images but 2 titles"):
        show_images(squares(3), titles=["a", "b"])


def test_load_sample_image_photo_ships_with_matplotlib():
    photo = load_sample_image("photo")
    assert photo.mode == "RGB" and min(photo.size) >= 256
    small = load_sample_image("photo", size=64)
    assert small.size == (64, 64)
    assert np.asarray(small).std() > 20  # a photograph, not a flat fill


def test_load_sample_image_draws_a_shapes_caption():
    picture = load_sample_image("a red circle on a blue background")
    assert picture.size == (64, 64)
    assert picture.getpixel((32, 32)) == COLORS["red"]
    assert picture.getpixel((1, 1)) == COLORS["blue"]
    assert load_sample_image("a red circle on a blue background", size=32).size == (
        32,
        32,
    )


@pytest.mark.parametrize(("name", "error"), [("a dog", ValueError), (None, TypeError)])
def test_load_sample_image_rejects_unknown_names(name, error):
    with pytest.raises(error, match="expected 'photo' or a shapes caption"):
        load_sample_image(name)
