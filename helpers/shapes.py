"""Pictures of coloured shapes and their captions: the world tiny-shapes-sd is trained on.

Everything is generated on the fly and is deterministic by seed: no files. A *scene* is what a caption says: one
shape of one colour on a background of another colour, and, only if the caption names them, a size and a place.
Like the caption of a photo, a caption leaves most of the picture open, and every picture varies in whatever its
caption does not say: the shade of each colour, the light and texture on the shape and on the background, the
shape's rotation, and its size and place unless they are named::

    >>> scene = parse_caption("a small green star in the top left corner, black background")
    >>> render(scene, seed=1).size
    (64, 64)
"""

from __future__ import annotations

import colorsys
import math
import random
import re
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (245, 220, 30),
    "orange": (250, 130, 20),
    "purple": (130, 40, 170),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
# Shapes that render and that the judge knows, but that no training picture shows: a concept to teach as a new word.
NEW_SHAPES: tuple[str, ...] = ("heart",)
# Shape width as a fraction of the picture: a named size draws from its range, an unnamed one from the whole range.
SIZES: dict[str, tuple[float, float]] = {"small": (0.42, 0.48), "big": (0.62, 0.72)}
ANY_SIZE = (0.42, 0.72)
# Centre of the shape as fractions of the picture (x, y). Corners hold small shapes only; an unnamed place is anywhere
# the shape fits.
POSITIONS: dict[str, tuple[float, float]] = {
    "center": (0.5, 0.5),
    "top left": (0.27, 0.27),
    "top right": (0.73, 0.27),
    "bottom left": (0.27, 0.73),
    "bottom right": (0.73, 0.73),
}
IMAGE_SIZE = 64
# draw the outline 4x larger, then average down: smooth edges like a photo's
_SUPERSAMPLE = 4
HUE_JITTER = 6.0  # degrees: the named hues lie 24 degrees or more apart
SATURATION_JITTER = (0.6, 1.05)  # muted to vivid: paler shades turn hue in the VAE
VALUE_JITTER = (0.85, 1.1)
LIGHT_STRENGTH = 0.3  # gradients, soft light and cloudy texture change brightness by up to about 1.5x this
MAX_ROTATION = 30.0  # degrees either way
EXPOSURE = (
    0.6,
    1.2,
)  # the whole scene's brightness, as a factor: dimmer scenes read as other colours (dim yellow as olive)


@dataclass(frozen=True)
class Scene:
    """What a caption says: one shape of one colour on a background of another; a size and a place if named."""

    shape: str
    color: str
    background: str
    size: str | None = None
    position: str | None = None

    def __post_init__(self) -> None:
        for value, allowed, what in (
            (self.shape, SHAPES + NEW_SHAPES, "shape"),
            (self.color, COLORS, "colour"),
            (self.background, COLORS, "background"),
        ):
            if value not in allowed:
                raise ValueError(
                    f"unknown {what} {value!r}: expected one of {sorted(allowed)}"
                )
        if self.size is not None and self.size not in SIZES:
            raise ValueError(
                f"unknown size {self.size!r}: expected one of {sorted(SIZES)} or None (unsaid)"
            )
        if self.position is not None and self.position not in POSITIONS:
            raise ValueError(
                f"unknown position {self.position!r}: expected one of {sorted(POSITIONS)} or None"
            )
        if self.color == self.background:
            raise ValueError(
                f"the shape and the background are both {self.color}: they must differ"
            )
        if self.size == "big" and self.position not in (None, "center"):
            raise ValueError(
                "a big shape does not fit in a corner; only small shapes go in a corner"
            )

    @property
    def in_corner(self) -> bool:
        return self.position not in (None, "center")


def _is_held_out(color: str, shape: str, background: str) -> bool:
    """One (colour, shape, background) combination in ten never appears in training: they test composition."""
    return (
        COLORS_INDEX[color] * 7 + SHAPES.index(shape) * 3 + COLORS_INDEX[background] * 5
    ) % 10 == 0


COLORS_INDEX = {name: i for i, name in enumerate(COLORS)}
HELD_OUT: frozenset[tuple[str, str, str]] = frozenset(
    (c, s, b)
    for c in COLORS
    for s in SHAPES
    for b in COLORS
    if c != b and _is_held_out(c, s, b)
)


def all_scenes(split: str = "train") -> list[Scene]:
    """Every plain scene (size and place unsaid) of the split: ``"train"`` (combinations seen in training) or
    ``"heldout"`` (never seen)."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    return [
        Scene(shape, color, background)
        for color in COLORS
        for shape in SHAPES
        for background in COLORS
        if color != background
        and ((color, shape, background) in HELD_OUT) == (split == "heldout")
    ]


CAPTION_TEMPLATES = (
    "a {thing} on a {bg} background",
    "a {thing}, {bg} background",
    "a {thing} against a {bg} background",
    "{thing} on {bg}",
)


def caption(scene: Scene, rng: random.Random | None = None) -> str:
    """A caption that is true of ``scene``: with ``rng`` one of several wordings, else the plainest one.

    A named size or place is always said, except that with ``rng`` a size word may be dropped (an unsaid size
    allows every size, so the caption stays true).
    """
    where = ""
    if scene.position == "center":
        where = " in the center"
    elif scene.position is not None:
        where = f" in the {scene.position} corner"
    size = f"{scene.size} " if scene.size is not None else ""
    if rng is None:
        text = f"a {size}{scene.color} {scene.shape}{where} on a {scene.background} background"
    else:
        if size and rng.random() < 0.3:
            size = ""
        template = rng.choice(CAPTION_TEMPLATES)
        text = template.format(
            thing=f"{size}{scene.color} {scene.shape}{where}", bg=scene.background
        )
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


def parse_caption(text: str) -> Scene:
    """The scene a caption asks for: the first colour named is the shape's, the second the background's.

    A size or place is set only where the caption names it ("small", "big", "in the top left corner", "in the
    center"); whatever it leaves unsaid stays None, and ``render`` chooses it.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a caption string, got {type(text).__name__}")
    words = re.findall(r"[a-z]+", text.lower())
    colors = [w for w in words if w in COLORS]
    shapes = [w for w in words if w in SHAPES + NEW_SHAPES]
    if len(colors) != 2 or len(shapes) != 1:
        raise ValueError(
            f"cannot draw {text!r}: a caption needs one shape ({', '.join(SHAPES + NEW_SHAPES)}) and two colours "
            f"({', '.join(COLORS)}), the shape's then the background's"
        )
    joined = " ".join(words)
    position = next((p for p in POSITIONS if p in joined), None)
    size = next((s for s in SIZES if s in words), None)
    return Scene(shapes[0], colors[0], colors[1], size, position)


def _outline(shape: str, r: float) -> list[tuple[float, float]]:
    """Polygon points of a shape of half-width r around (0, 0), y pointing down."""
    if shape == "triangle":
        return [(0.0, -r), (r, 0.85 * r), (-r, 0.85 * r)]
    if shape == "star":
        angles = np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
        return list(zip(radii * np.cos(angles), -radii * np.sin(angles)))
    if shape == "heart":
        t = np.linspace(
            0, 2 * np.pi, 48, endpoint=False
        )  # the classic heart curve, scaled to half-width r
        x, y = (
            16 * np.sin(t) ** 3,
            13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t),
        )
        return list(zip(r * x / 16, -r * (y + 2.5) / 15))
    if shape == "cross":
        t = 0.36 * r  # half the thickness of an arm
        return [
            (t, r),
            (t, t),
            (r, t),
            (r, -t),
            (t, -t),
            (t, -r),
            (-t, -r),
            (-t, -t),
            (-r, -t),
            (-r, t),
            (-t, t),
            (-t, r),
        ]
    # a square looks as big as a circle of the same width when it is a little smaller
    s = 0.85 * r
    return [(-s, -s), (s, -s), (s, s), (-s, s)]


def shape_mask(
    shape: str,
    center: tuple[float, float],
    width: float,
    angle: float,
    size: int = IMAGE_SIZE,
) -> np.ndarray:
    """How much of each pixel the shape covers, in [0, 1]: (size, size). ``center`` and ``width`` are fractions of
    the picture, ``angle`` is in degrees."""
    big = size * _SUPERSAMPLE
    cx, cy, r = center[0] * big, center[1] * big, width * big / 2
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        draw.polygon(
            [
                (cx + x * cos - y * sin, cy + x * sin + y * cos)
                for x, y in _outline(shape, r)
            ],
            fill=255,
        )
    small = canvas.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def light(rng: random.Random, size: int = IMAGE_SIZE) -> np.ndarray:
    """A brightness field around 1, (size, size): flat, a gradient, a soft spot of light, or a cloudy texture."""
    kind = rng.choice(("flat", "gradient", "spot", "cloudy"))
    # each in [-0.5, 0.5]
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1) - 0.5
    strength = rng.uniform(0.5, 1.0) * LIGHT_STRENGTH
    if kind == "gradient":
        angle = rng.uniform(0, 2 * math.pi)
        field = 2 * (x * math.cos(angle) + y * math.sin(angle))  # in about [-1.4, 1.4]
    elif kind == "spot":
        sx, sy = rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4)
        field = 1.5 * np.exp(-((x - sx) ** 2 + (y - sy) ** 2) / 0.08) - 0.5
    elif kind == "cloudy":
        coarse = np.array(
            [[rng.uniform(-1, 1) for _ in range(4)] for _ in range(4)], dtype=np.float32
        )
        field = np.asarray(
            Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
        )
    else:
        field = np.zeros((size, size), dtype=np.float32)
    return 1 + strength * np.clip(field, -1.5, 1.5)


def shade(name: str, rng: random.Random) -> np.ndarray:
    """One shade of a named colour, as RGB floats: its hue turned by up to ``HUE_JITTER`` degrees, its saturation
    and brightness moved a little. A range of reds, not one red, and every one of them still red."""
    hue, saturation, value = colorsys.rgb_to_hsv(*(c / 255 for c in COLORS[name]))
    hue = (hue + rng.uniform(-1, 1) * HUE_JITTER / 360) % 1
    saturation = min(1.0, saturation * rng.uniform(*SATURATION_JITTER))
    value = min(1.0, value * rng.uniform(*VALUE_JITTER))
    return np.array(colorsys.hsv_to_rgb(hue, saturation, value), np.float32) * 255


@dataclass(frozen=True)
class Layout:
    """Where and how big a shape is drawn: centre (fractions of the picture), width (a fraction) and angle."""

    center: tuple[float, float]
    width: float
    angle: float


def layout(scene: Scene, rng: random.Random) -> Layout:
    """A size, a place and a rotation that obey the scene: named ones from their range, unnamed ones from all."""
    low, high = (
        SIZES[scene.size]
        if scene.size
        else (SIZES["small"] if scene.in_corner else ANY_SIZE)
    )
    width = rng.uniform(low, high)
    if scene.position is None:
        margin = width / 2 + 0.02
        center = (rng.uniform(margin, 1 - margin), rng.uniform(margin, 1 - margin))
    else:
        fx, fy = POSITIONS[scene.position]
        center = (fx + rng.uniform(-0.04, 0.04), fy + rng.uniform(-0.04, 0.04))
    return Layout(center, width, rng.uniform(-MAX_ROTATION, MAX_ROTATION))


PLAIN_WIDTH = 0.56  # the plain drawing's width when its size is unsaid


def plain_layout(scene: Scene) -> Layout:
    """The one drawing used without a seed: upright, at the middle of its size range, at its place or centred."""
    low, high = (
        SIZES[scene.size]
        if scene.size
        else (SIZES["small"] if scene.in_corner else (PLAIN_WIDTH,) * 2)
    )
    return Layout(POSITIONS[scene.position or "center"], (low + high) / 2, 0.0)


def render(
    scene: Scene | str, size: int = IMAGE_SIZE, seed: int | None = None
) -> Image.Image:
    """Draw a scene (or a caption) as an RGB picture.

    With a ``seed``, everything the scene leaves open is drawn at random from it: shades, light and texture,
    rotation, and the size and place unless named. Without one, the plain drawing: upright, flat base colours.
    """
    if isinstance(scene, str):
        scene = parse_caption(scene)
    if seed is None:
        where = plain_layout(scene)
        shape_rgb, background_rgb = (
            np.array(COLORS[c], np.float32) for c in (scene.color, scene.background)
        )
        shape_light = background_light = np.ones((size, size), np.float32)
    else:
        rng = random.Random(seed)
        where = layout(scene, rng)
        shape_rgb, background_rgb = (
            shade(scene.color, rng),
            shade(scene.background, rng),
        )
        exposure = rng.uniform(*EXPOSURE)
        shape_light, background_light = (
            exposure * light(rng, size),
            exposure * light(rng, size),
        )
    coverage = shape_mask(scene.shape, where.center, where.width, where.angle, size)[
        ..., None
    ]  # (H, W, 1)
    shape_field = shape_rgb * shape_light[..., None]  # (H, W, 3)
    background_field = background_rgb * background_light[..., None]
    pixels = coverage * shape_field + (1 - coverage) * background_field
    # Where light pushes a channel past 255, dim the whole pixel instead of clipping that channel: a bright orange
    # stays orange instead of turning yellow.
    pixels = pixels * np.minimum(
        1.0, 255 / np.maximum(pixels.max(axis=2, keepdims=True), 1e-6)
    )
    return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8))


def random_scene(rng: random.Random, split: str = "train") -> Scene:
    """A scene drawn uniformly from the split's combinations; half of them also name a size or a place."""
    while True:
        color, background = rng.sample(list(COLORS), 2)
        shape = rng.choice(SHAPES)
        if ((color, shape, background) in HELD_OUT) == (split == "heldout"):
            break
    size = rng.choice((None, None, "small", "big"))
    position = rng.choice(
        (None, None, None, "center", *[p for p in POSITIONS if p != "center"])
    )
    if size == "big" and position not in (None, "center"):
        position = None
    return Scene(shape, color, background, size, position)


def make_dataset(
    n: int, seed: int = 0, split: str = "train"
) -> tuple[np.ndarray, list[Scene]]:
    """``n`` pictures as a uint8 array (n, H, W, 3) and their scenes, the same for the same seed."""
    rng = random.Random(seed)
    scenes = [random_scene(rng, split) for _ in range(n)]
    pictures = np.stack(
        [np.asarray(render(s, seed=rng.randrange(2**31))) for s in scenes]
    )
    return pictures, scenes


def with_attribute(scene: Scene, attribute: str, value: str | None) -> Scene:
    """The same scene with one attribute changed (used to build near-miss captions)."""
    return replace(scene, **{attribute: value})
