"""Pictures of coloured shapes and their captions: the data tiny-shapes-sd is trained on.

Everything is generated on the fly and is deterministic by seed: no files. A *scene* is one shape of one colour on a
background of another colour, with a size and a position. A caption is a sentence that is true of a scene, drawn from
a small grammar, so the same scene can be described in several ways::

    >>> scene = parse_caption("a small green star in the top left corner, black background")
    >>> render(scene).size
    (64, 64)
"""

from __future__ import annotations

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
# Shape width as a fraction of the picture: even a small shape spans ~3 latent pixels of an 8x8 latent.
SIZES: dict[str, float] = {"small": 0.44, "big": 0.66}
# Centre of the shape as fractions of the picture (x, y); corners are for small shapes only.
POSITIONS: dict[str, tuple[float, float]] = {
    "center": (0.5, 0.5),
    "top left": (0.28, 0.28),
    "top right": (0.72, 0.28),
    "bottom left": (0.28, 0.72),
    "bottom right": (0.72, 0.72),
}
IMAGE_SIZE = 64
_SUPERSAMPLE = 4  # draw 4x larger, then downsample: smooth edges like a photo's


@dataclass(frozen=True)
class Scene:
    """One shape of one colour on a background of another colour."""

    shape: str
    color: str
    background: str
    size: str = "big"
    position: str = "center"

    def __post_init__(self) -> None:
        for value, allowed, what in (
            (self.shape, SHAPES, "shape"),
            (self.color, COLORS, "colour"),
            (self.background, COLORS, "background"),
            (self.size, SIZES, "size"),
            (self.position, POSITIONS, "position"),
        ):
            if value not in allowed:
                raise ValueError(f"unknown {what} {value!r}: expected one of {sorted(allowed)}")
        if self.color == self.background:
            raise ValueError(f"the shape and the background are both {self.color}: they must differ")
        if self.size == "big" and self.position != "center":
            raise ValueError("big shapes are always in the center; only small shapes go in a corner")


def _is_held_out(color: str, shape: str, background: str) -> bool:
    """One (colour, shape, background) combination in ten never appears in training: they test composition."""
    return (COLORS_INDEX[color] * 7 + SHAPES.index(shape) * 3 + COLORS_INDEX[background] * 5) % 10 == 0


COLORS_INDEX = {name: i for i, name in enumerate(COLORS)}
HELD_OUT: frozenset[tuple[str, str, str]] = frozenset(
    (c, s, b) for c in COLORS for s in SHAPES for b in COLORS if c != b and _is_held_out(c, s, b)
)


def all_scenes(split: str = "train") -> list[Scene]:
    """Every scene of the split: ``"train"`` (combinations seen in training) or ``"heldout"`` (never seen)."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    scenes = []
    for color in COLORS:
        for shape in SHAPES:
            for background in COLORS:
                if color == background or ((color, shape, background) in HELD_OUT) != (split == "heldout"):
                    continue
                scenes.append(Scene(shape, color, background, "big", "center"))
                scenes += [Scene(shape, color, background, "small", p) for p in POSITIONS]
    return scenes


def caption(scene: Scene, rng: random.Random | None = None) -> str:
    """A caption that is true of ``scene``: with ``rng`` one of several wordings, else the plainest one.

    The plainest names the size only when it is small ("a red circle on a blue background" is big and centred).
    With ``rng`` the size word may be left out (then either size fits); a corner is always named.
    """
    where = "" if scene.position == "center" else f" in the {scene.position} corner"
    if rng is None:
        size = "small " if scene.size == "small" else ""
        text = f"a {size}{scene.color} {scene.shape}{where} on a {scene.background} background"
    else:
        size = f"{scene.size} " if rng.random() < 0.5 else ""
        template = rng.choice(CAPTION_TEMPLATES)
        text = template.format(thing=f"{size}{scene.color} {scene.shape}{where}", bg=scene.background)
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


CAPTION_TEMPLATES = (
    "a {thing} on a {bg} background",
    "a {thing}, {bg} background",
    "a {thing} against a {bg} background",
    "{thing} on {bg}",
)

def parse_caption(text: str) -> Scene:
    """The scene a caption asks for: the first colour named is the shape's, the second the background's.

    Unsaid details take defaults: big and centred, or small when a corner is named.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a caption string, got {type(text).__name__}")
    words = re.findall(r"[a-z]+", text.lower())
    colors = [w for w in words if w in COLORS]
    shapes = [w for w in words if w in SHAPES]
    if len(colors) != 2 or len(shapes) != 1:
        raise ValueError(
            f"cannot draw {text!r}: a caption needs one shape ({', '.join(SHAPES)}) and two colours "
            f"({', '.join(COLORS)}), the shape's then the background's"
        )
    joined = " ".join(words)
    position = next((p for p in POSITIONS if p != "center" and p in joined), "center")
    size = "small" if "small" in words or position != "center" else "big"
    return Scene(shapes[0], colors[0], colors[1], size, position)


def _outline(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """Polygon points of a shape with centre (cx, cy) and half-width r."""
    if shape == "triangle":
        return [(cx, cy - r), (cx + r, cy + 0.85 * r), (cx - r, cy + 0.85 * r)]
    if shape == "star":
        angles = np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
        return list(zip(cx + radii * np.cos(angles), cy - radii * np.sin(angles)))
    if shape == "cross":
        t = 0.36 * r  # half the thickness of an arm
        xy = [(t, r), (t, t), (r, t), (r, -t), (t, -t), (t, -r), (-t, -r), (-t, -t), (-r, -t), (-r, t), (-t, t), (-t, r)]
        return [(cx + x, cy + y) for x, y in xy]
    return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]  # square


def render(scene: Scene | str, size: int = IMAGE_SIZE, seed: int | None = None) -> Image.Image:
    """Draw a scene (or a caption) as an RGB picture; ``seed`` adds a little jitter of place and size."""
    if isinstance(scene, str):
        scene = parse_caption(scene)
    rng = random.Random(seed)
    jitter = (lambda: rng.uniform(-0.03, 0.03)) if seed is not None else (lambda: 0.0)
    big = size * _SUPERSAMPLE
    fx, fy = POSITIONS[scene.position]
    cx, cy = (fx + jitter()) * big, (fy + jitter()) * big
    r = (SIZES[scene.size] + jitter()) * big / 2
    picture = Image.new("RGB", (big, big), COLORS[scene.background])
    draw = ImageDraw.Draw(picture)
    if scene.shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=COLORS[scene.color])
    else:
        draw.polygon(_outline(scene.shape, cx, cy, r * (0.85 if scene.shape == "square" else 1.0)), fill=COLORS[scene.color])
    return picture.resize((size, size), Image.Resampling.BOX)


def random_scene(rng: random.Random, split: str = "train") -> Scene:
    """A scene drawn uniformly from the split's combinations, size and position."""
    while True:
        color, background = rng.sample(list(COLORS), 2)
        shape = rng.choice(SHAPES)
        if ((color, shape, background) in HELD_OUT) == (split == "heldout"):
            break
    size = rng.choice(list(SIZES))
    position = "center" if size == "big" else rng.choice(list(POSITIONS))
    return Scene(shape, color, background, size, position)


def make_dataset(n: int, seed: int = 0, split: str = "train") -> tuple[np.ndarray, list[Scene]]:
    """``n`` pictures as a uint8 array (n, H, W, 3) and their scenes, the same for the same seed."""
    rng = random.Random(seed)
    scenes = [random_scene(rng, split) for _ in range(n)]
    pictures = np.stack([np.asarray(render(s, seed=rng.randrange(2**31))) for s in scenes])
    return pictures, scenes


def with_attribute(scene: Scene, attribute: str, value: str) -> Scene:
    """The same scene with one attribute changed (used to build near-miss captions)."""
    return replace(scene, **{attribute: value})
