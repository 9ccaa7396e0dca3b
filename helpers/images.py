"""Pictures in and out and on screen: PIL images, numpy arrays, grids and figures, and the sample photo."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from . import shapes

ImageLike = Image.Image | str | Path | np.ndarray
SAMPLE_PHOTO = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


SIXTEEN_BIT_MODES = (
    "I;16",
    "I;16L",
    "I;16B",
    "I;16N",
    "I",
)  # how PIL opens a 16-bit greyscale PNG


def to_pil(image: ImageLike) -> Image.Image:
    """A PIL image, a path to one, or an (H, W, 3) uint8 array -> an RGB PIL image (RGBA and greyscale converted).

    16-bit pictures (PNGs, uint16 arrays) are scaled to 8 bits: converted as they are, every value above 255 would
    turn white.
    """
    if isinstance(image, (str, Path)):
        if not Path(image).is_file():
            raise FileNotFoundError(f"no image file at {image}")
        image = Image.open(image)
    elif isinstance(image, np.ndarray):
        if (
            image.dtype not in (np.uint8, np.uint16)
            or image.ndim not in (2, 3)
            or (image.ndim == 3 and image.shape[2] not in (3, 4))
        ):
            raise ValueError(
                f"expected an (H, W, 3) uint8 array, got shape {image.shape} and dtype {image.dtype}"
            )
        image = Image.fromarray(
            sixteen_to_eight_bits(image) if image.dtype == np.uint16 else image
        )
    elif not isinstance(image, Image.Image):
        raise TypeError(
            f"expected a PIL image, a path or an (H, W, 3) uint8 array, got {type(image).__name__}"
        )
    if image.mode in SIXTEEN_BIT_MODES:
        image = Image.fromarray(sixteen_to_eight_bits(np.asarray(image)))
    return image.convert("RGB")


def sixteen_to_eight_bits(array: np.ndarray) -> np.ndarray:
    """0-65535 values -> 0-255 (uint8), by 65535 / 255 = 257, rounded."""
    if array.min() < 0 or array.max() > 65535:
        raise ValueError(
            f"expected 16-bit values in 0-65535, got {array.min()}..{array.max()}"
        )
    return np.round(array.astype(np.float64) / 257).astype(np.uint8)


def numpy_to_pil(images: np.ndarray) -> list[Image.Image]:
    """Float pictures in [0, 1] (or integers in 0-255), shaped (H, W, 3) or (B, H, W, 3) -> a list of PIL images.

    Values outside the range, or NaN, are refused rather than clipped: clipping would hide the mistake (0-255 floats
    all turn white, [-1, 1] pictures lose their dark half, NaN turns black).
    """
    if not isinstance(images, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(images).__name__}")
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"expected shape (H, W, 3) or (B, H, W, 3), got {images.shape}"
        )
    if np.issubdtype(images.dtype, np.integer):
        expect_pixel_range(
            images,
            0,
            255,
            f"{images.dtype} pixels",
            "16-bit pictures need dividing by 257 first" if images.max() > 255 else "",
        )
        return [Image.fromarray(image) for image in images.astype(np.uint8)]
    if not np.issubdtype(images.dtype, np.floating):
        raise TypeError(f"expected integer or float pixels, got dtype {images.dtype}")
    expect_pixel_range(
        images,
        0.0,
        1.0,
        "float pixels",
        "0-255 floats need dividing by 255"
        if images.max() > 1 + PIXEL_SLACK
        else "pictures in [-1, 1] need (x + 1) / 2",
    )
    return [
        Image.fromarray(image)
        for image in (np.clip(images, 0, 1) * 255).round().astype(np.uint8)
    ]


PIXEL_SLACK = 1e-4  # float arithmetic may step this far past a range's end; such values are clipped, not refused


def expect_pixel_range(
    values: np.ndarray | torch.Tensor,
    low: float,
    high: float,
    what: str,
    hint: str = "",
) -> None:
    """Raise ``ValueError`` if ``values`` hold NaN or lie outside [low, high] (with ``PIXEL_SLACK`` for floats)."""
    values = (
        values.detach().float().cpu().numpy()
        if isinstance(values, torch.Tensor)
        else values
    )
    if np.isnan(values).any():
        raise ValueError(
            f"{what} hold NaN ({int(np.isnan(values).sum())} of {values.size} values): the numbers that "
            "made them went wrong (a diverged loop, float16 overflow)"
        )
    slack = PIXEL_SLACK if np.issubdtype(values.dtype, np.floating) else 0
    if values.min() < low - slack or values.max() > high + slack:
        raise ValueError(
            f"{what} must lie in [{low:g}, {high:g}], got {values.min():g}..{values.max():g}"
            + (f": {hint}" if hint else "")
        )


def grid_shape(
    n: int, rows: int | None = None, cols: int | None = None
) -> tuple[int, int]:
    """Rows and columns for ``n`` pictures: near-square when neither is given."""
    if n == 0:
        raise ValueError("no images to put in a grid")
    for name, count in (("rows", rows), ("cols", cols)):
        if count is not None and (
            not isinstance(count, int) or isinstance(count, bool) or count < 1
        ):
            raise ValueError(
                f"{name} must be a whole number of at least 1 (or None to choose), got {count!r}"
            )
    if rows is None and cols is None:
        cols = math.ceil(math.sqrt(n))
    rows = rows or math.ceil(n / cols)
    cols = cols or math.ceil(n / rows)
    if rows * cols < n:
        raise ValueError(
            f"a {rows}x{cols} grid holds {rows * cols} images, but {n} were given"
        )
    return rows, cols


def expect_pictures(images: Sequence[Image.Image], what: str) -> None:
    """Raise ``TypeError`` unless ``images`` is a list (or tuple) of PIL images."""
    if isinstance(images, (Image.Image, np.ndarray, torch.Tensor)) or not isinstance(
        images, Sequence
    ):
        raise TypeError(
            f"{what} takes a list of PIL images, got one {type(images).__name__}: pass [picture] for one "
            "picture, numpy_to_pil(array) for an array"
        )
    wrong = [
        type(image).__name__ for image in images if not isinstance(image, Image.Image)
    ]
    if wrong:
        raise TypeError(
            f"{what} takes PIL images, got {', '.join(sorted(set(wrong)))} (numpy_to_pil converts arrays)"
        )


def image_grid(
    images: Sequence[Image.Image], rows: int | None = None, cols: int | None = None
) -> Image.Image:
    """Paste same-sized PIL images into one picture, row by row."""
    expect_pictures(images, "image_grid")
    rows, cols = grid_shape(len(images), rows, cols)
    sizes = {image.size for image in images}
    if len(sizes) != 1:
        raise ValueError(f"all images must have the same size, got {sorted(sizes)}")
    width, height = sizes.pop()
    grid = Image.new("RGB", (cols * width, rows * height), "white")
    for i, image in enumerate(images):
        grid.paste(image, ((i % cols) * width, (i // cols) * height))
    return grid


def show_images(
    images: Sequence[Image.Image],
    titles: Sequence[str] | None = None,
    title: str | None = None,
    cols: int | None = None,
    size: float = 2.2,
) -> None:
    """Show pictures side by side in one titled matplotlib figure, each with its own caption.

    The figure is displayed at once, as fastai's miniai does it: a cell needs no ``plt.show()`` after it, and
    ``plt.gcf()`` still holds it where nothing displays figures (a test, a script).
    """
    expect_pictures(images, "show_images")
    rows, cols = grid_shape(
        len(images), cols=cols if cols is not None else min(len(images), 6) or None
    )
    if titles is not None and (isinstance(titles, str) or len(titles) != len(images)):
        raise ValueError(
            f"{len(images)} images but {1 if isinstance(titles, str) else len(titles)} titles: "
            "give one title per picture, in a list"
        )
    not_text = [i for i, t in enumerate(titles or []) if not isinstance(t, str)]
    if not_text:
        raise TypeError(
            f'titles must be strings, but title {not_text[0]} is {titles[not_text[0]]!r}: use "" for '
            "a picture without one"
        )
    # Each caption is wrapped to its picture's width (about 13 characters per inch at size 9); its own line breaks stay.
    titles = (
        [wrap_lines(t, max(12, int(13 * size))) for t in titles]
        if titles is not None
        else None
    )
    caption_lines = max((t.count("\n") + 1 for t in titles or []), default=0)
    # Constrained layout makes room for multi-line captions and the figure title, so neither overlaps a picture.
    figure, axes = plt.subplots(
        rows,
        cols,
        figsize=(size * cols, rows * (size + 0.18 * caption_lines) + 0.5),
        squeeze=False,
        layout="constrained",
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < len(images):
            ax.imshow(
                images[i],
                interpolation="nearest" if images[i].size[0] <= 128 else "antialiased",
            )
            if titles is not None:
                ax.set_title(titles[i], fontsize=9)
    if title:
        figure.suptitle(wrap_lines(title, max(40, int(11 * size * cols))))
    plt.show()


def wrap_lines(text: str, width: int) -> str:
    """``text`` with every line longer than ``width`` characters broken at spaces; its own line breaks are kept."""
    return "\n".join(
        "\n".join(textwrap.wrap(line, width)) or line for line in text.split("\n")
    )


def load_sample_image(name: str, size: int | None = None) -> Image.Image:
    """A picture that needs no network: ``"photo"`` (Grace Hopper, from matplotlib's sample data) or a shapes caption.

    ``size`` resizes the photo's short side (then crops square); shapes pictures are drawn at ``size`` (default 64).
    """
    if not isinstance(name, str):
        raise TypeError(
            f"expected 'photo' or a shapes caption, got {type(name).__name__}"
        )
    if name == "photo":
        photo = Image.open(SAMPLE_PHOTO).convert("RGB")
        if size is None:
            return photo
        side = min(photo.size)
        return photo.crop((0, 0, side, side)).resize(
            (size, size), Image.Resampling.LANCZOS
        )
    try:
        scene = shapes.parse_caption(name)
    except ValueError as error:
        raise ValueError(f"expected 'photo' or a shapes caption; {error}") from None
    return shapes.render(scene, size=size or shapes.IMAGE_SIZE)
