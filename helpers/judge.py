"""The judge: what a tiny-shapes-sd picture shows, read from its pixels.

``judge(picture)`` returns the shape's colour, the background's colour, the shape, and where it sits and how big it
is. Chapters use it to assert what their prose says a figure shows, and the model's evaluation uses it to score
generated pictures. It shares no weights with the generator: the colours come from pixel statistics, and the shape
from a small CNN trained on the outlines of rendered pictures (``python -m helpers.tiny train`` trains it; its
weights ship beside this file).

    >>> from helpers import shapes
    >>> judge(shapes.render("a small red star in the top left corner on a blue background", seed=0)).says()
    'a small red star in the top left corner on a blue background'
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from . import shapes

JUDGE_WEIGHTS = Path(__file__).resolve().parent / "judge_weights.safetensors"
# fewer pixels apart from the background than this: no shape at all
MIN_SHAPE_PIXELS = 12
NEAR_PLACE = 0.13  # a centre this close to a named place (in fractions of the picture) sits there
# how much a difference in brightness (0-255) counts beside one in hue: white on black stands out from tinted shadows
BRIGHTNESS_WEIGHT = 0.5


def hue_saturation_value(rgb: np.ndarray) -> tuple[float, float, float]:
    """An RGB triple (0-255) as hue in degrees, saturation and value in [0, 1]."""
    r, g, b = (float(c) / 255 for c in rgb)
    high, low = max(r, g, b), min(r, g, b)
    if high == low:
        return 0.0, 0.0, high
    span = high - low
    if high == r:
        hue = 60 * (((g - b) / span) % 6)
    elif high == g:
        hue = 60 * ((b - r) / span + 2)
    else:
        hue = 60 * ((r - g) / span + 4)
    return hue, span / high, high


CHROMATIC_HUES = {
    name: hue_saturation_value(np.array(rgb))[0]
    for name, rgb in shapes.COLORS.items()
    if name not in ("white", "black")
}
DARK = 0.13  # value below which any colour reads as black (black stays below 0.1 under any light)
GREY = 0.15  # saturation below which a colour reads as white (white and black have none; a pale hue has more)


def name_color(rgb: np.ndarray) -> str:
    """The colour name of an RGB triple, as a person would say it under any light: black if dark, white if grey,
    else the named hue nearest on the colour wheel. Brightness (light, shade, exposure) changes no name."""
    hue, saturation, value = hue_saturation_value(rgb)
    if value < DARK:
        return "black"
    if saturation < GREY:
        return "white"
    return min(
        CHROMATIC_HUES,
        key=lambda name: min(
            abs(hue - CHROMATIC_HUES[name]), 360 - abs(hue - CHROMATIC_HUES[name])
        ),
    )


def _as_pixels(picture: Image.Image | np.ndarray) -> np.ndarray:
    """A picture as float RGB (H, W, 3) in 0-255."""
    if isinstance(picture, Image.Image):
        return np.asarray(picture.convert("RGB"), dtype=np.float32)
    pixels = np.asarray(picture)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise TypeError(
            f"expected a PIL picture or a uint8 array (H, W, 3), got {pixels.dtype} {pixels.shape}"
        )
    return pixels.astype(np.float32)


def foreground(
    picture: Image.Image | np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(background RGB, shape RGB, mask (H, W) in [0, 1]): how much each pixel looks like the shape rather than the
    background.

    Distances are measured between colours divided by their brightness, so light and shade count little, plus a
    part of the difference in brightness itself, so that a white shape on black stands out from dark, tinted pixels
    around it (dividing a near-black pixel by its brightness magnifies its tint). The background is the median of
    the picture's border; the shape's colour is the median of the pixels farthest from it. A pixel's mask is its
    distance from the background over its distances from both. Where both colours have the same name there is no
    shape.
    """
    pixels = _as_pixels(picture)  # (H, W, 3)
    brightness = pixels.max(axis=2)  # (H, W)
    # Colours divided by their brightness (plus a little, so that near-black stays stable): light and shade vanish.
    hues = pixels / (brightness[..., None] + 20) * 255  # (H, W, 3)

    def distance(to: np.ndarray) -> np.ndarray:
        """(H, W): each pixel's distance from the pixels ``to`` selects, by their median hue and brightness."""
        hue, level = np.median(hues[to], axis=0), np.median(brightness[to])
        return np.linalg.norm(hues - hue, axis=2) + BRIGHTNESS_WEIGHT * np.abs(
            brightness - level
        )

    on_border = np.ones(pixels.shape[:2], bool)
    on_border[2:-2, 2:-2] = False
    to_background = distance(on_border)
    far = to_background >= 0.6 * np.percentile(to_background, 99)
    to_shape = distance(far)
    background, shape_rgb = (
        np.median(pixels[on_border], axis=0),
        np.median(pixels[far], axis=0),
    )
    mask = to_background / (to_background + to_shape + 1e-6)
    if name_color(shape_rgb) == name_color(
        background
    ):  # light and shade on a plain picture, not a shape
        mask = np.zeros_like(mask)
    return background, shape_rgb, mask


# the five shapes of the training pictures, and the new ones
JUDGED_SHAPES = shapes.SHAPES + shapes.NEW_SHAPES


class ShapeClassifier(torch.nn.Module):
    """A small CNN from a foreground mask (B, 1, 64, 64) to the shapes it knows (``JUDGED_SHAPES``)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),  # (B, 16, 32, 32)
            torch.nn.Conv2d(16, 32, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),  # (B, 32, 16, 16)
            torch.nn.Conv2d(32, 64, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.AdaptiveMaxPool2d(4),  # (B, 64, 4, 4)
        )
        self.head = torch.nn.Linear(64 * 16, len(JUDGED_SHAPES))

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(masks).flatten(1))


@cache
def shape_classifier() -> ShapeClassifier:
    """The shipped shape classifier, loaded once."""
    if not JUDGE_WEIGHTS.exists():
        raise FileNotFoundError(
            f"no judge weights at {JUDGE_WEIGHTS}: `python -m helpers.tiny train` writes them"
        )
    classifier = ShapeClassifier()
    classifier.load_state_dict(load_file(JUDGE_WEIGHTS))
    return classifier.eval()


@dataclass(frozen=True)
class Judgement:
    """What a picture shows. ``color`` and ``shape`` are None where no shape stands out from the background."""

    color: str | None
    background: str
    shape: str | None
    center: tuple[
        float, float
    ]  # the shape's centre of mass, as fractions of the picture (x, y)
    area: float  # the share of the picture that the shape covers

    @property
    def position(self) -> str | None:
        """The named place nearest the shape's centre, if it is near one."""
        distances = {
            name: np.hypot(x - self.center[0], y - self.center[1])
            for name, (x, y) in shapes.POSITIONS.items()
        }
        name = min(distances, key=distances.get)
        return name if distances[name] <= NEAR_PLACE else None

    @property
    def size(self) -> str | None:
        """ "small" or "big" where the shape's width says so clearly; None in between or without a shape."""
        if self.shape is None:
            return None
        width = np.sqrt(self.area / area_per_squared_width(self.shape))
        low, high = shapes.SIZES["small"][1], shapes.SIZES["big"][0]
        margin = 0.04  # generated edges are soft: a width this close to a range still counts as in it
        if width <= low + margin:
            return "small"
        return "big" if width >= high - margin else None

    def shows(self, scene: shapes.Scene | str) -> bool:
        """True if the picture shows what the scene (or caption) asks for, its named size and place included."""
        if isinstance(scene, str):
            scene = shapes.parse_caption(scene)
        named = [(scene.size, self.size), (scene.position, self.position)]
        return (self.color, self.background, self.shape) == (
            scene.color,
            scene.background,
            scene.shape,
        ) and all(asked is None or asked == seen for asked, seen in named)

    def says(self) -> str:
        """The plain caption of what the picture shows, naming its size and place where they are clear."""
        if self.color is None or self.shape is None:
            return f"a plain {self.background} picture"
        return shapes.caption(
            shapes.Scene(
                self.shape,
                self.color,
                self.background,
                self.size,
                self.position if self.size != "big" else None,
            )
        )


@cache
def area_per_squared_width(shape: str) -> float:
    """The area of an upright shape over its width squared (a circle's is pi / 4): a shape's width from its area."""
    return (
        float(shapes.shape_mask(shape, (0.5, 0.5), 0.6, 0.0).sum())
        / (0.6 * shapes.IMAGE_SIZE) ** 2
    )


def judge_mask(mask: np.ndarray) -> tuple[tuple[float, float], float]:
    """The centre of mass of a mask, as fractions of its side, and the share of the picture it covers."""
    size = mask.shape[0]
    weights = (mask > 0.5).astype(np.float32)
    total = max(weights.sum(), 1.0)
    y, x = np.mgrid[0:size, 0:size]
    center = (
        float((weights * x).sum() / total + 0.5) / size,
        float((weights * y).sum() / total + 0.5) / size,
    )
    return center, float(weights.sum()) / size**2


@torch.no_grad()
def judge_many(pictures: list[Image.Image | np.ndarray]) -> list[Judgement]:
    """``judge`` for many pictures, with one call of the shape classifier."""
    if not pictures:
        return []
    parts = [foreground(picture) for picture in pictures]
    masks = (
        torch.from_numpy(np.stack([mask for _, _, mask in parts])).float().unsqueeze(1)
    )  # (B, 1, H, W)
    predicted = shape_classifier()(masks).argmax(1).tolist()
    judgements = []
    for (background, shape_rgb, mask), label in zip(parts, predicted):
        has_shape = (mask > 0.5).sum() >= MIN_SHAPE_PIXELS
        pixels_color = name_color(shape_rgb) if has_shape else None
        center, area = judge_mask(mask)
        judgements.append(
            Judgement(
                pixels_color,
                name_color(background),
                JUDGED_SHAPES[label] if has_shape else None,
                center,
                area,
            )
        )
    return judgements


def judge(picture: Image.Image | np.ndarray) -> Judgement:
    """What one tiny-shapes-sd picture shows: its colours, its shape, where it sits and how big it is."""
    return judge_many([picture])[0]


def assert_shows(
    pictures: list[Image.Image],
    captions: list[str],
    is_tiny: bool,
    at_least: int | None = None,
) -> None:
    """Assert that the pictures show their captions (all of them, or ``at_least`` of them), as the prose beside a
    figure says; print how many do, and what the judge read where a picture does not. It returns nothing, so that a
    cell ending with it shows no value.

    The judge reads tiny-shapes-sd's pictures only: with another model (``is_tiny`` false) it says so and checks
    nothing, since a real model's pictures are photographs, not flat shapes.
    """
    if not is_tiny:
        print(
            "(The judge reads tiny-shapes-sd's pictures only: with this model, look at the figure.)"
        )
        return
    if len(pictures) != len(captions):
        raise ValueError(f"{len(pictures)} pictures but {len(captions)} captions")
    seen = judge_many(pictures)
    hits = [j.shows(text) for j, text in zip(seen, captions)]
    needed = len(captions) if at_least is None else at_least
    report = "; ".join(
        f"{'ok' if hit else 'MISS'}: asked {text!r}, saw {j.says()!r}"
        for j, text, hit in zip(seen, captions, hits)
    )
    assert sum(hits) >= needed, (
        f"only {sum(hits)} of {len(captions)} pictures show their caption ({report})"
    )
    misses = "".join(
        f"; it read {j.says()!r} for {text!r}"
        for j, text, hit in zip(seen, captions, hits)
        if not hit
    )
    print(
        f"The judge agrees: {sum(hits)} of {len(captions)} pictures show their caption{misses}."
    )
