"""How far apart two pictures are: the largest and the mean pixel difference, the PSNR, and a picture of the
difference.

Chapter 2 writes ``psnr`` and ``difference`` in its own cells, where it teaches them; later chapters, the checks,
the tests and the evaluation of tiny-shapes-sd import them from here. Every measure works on the 0-255 scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image


def max_pixel_diff(images: Sequence[Image.Image], others: Sequence[Image.Image]) -> int:
    """The largest difference of any channel of any pixel between two lists of same-sized pictures (0-255)."""
    if len(images) != len(others):
        raise ValueError(f"{len(images)} pictures against {len(others)}")
    return max(
        int(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max())
        for a, b in zip(images, others)
    )


def mean_pixel_diff(
    images: Sequence[Image.Image], others: Sequence[Image.Image]
) -> float:
    """The mean absolute difference of two lists of same-sized pictures, over every channel of every pixel (0-255)."""
    if len(images) != len(others):
        raise ValueError(f"{len(images)} pictures against {len(others)}")
    return float(
        np.mean(
            [
                np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean()
                for a, b in zip(images, others)
            ]
        )
    )


def psnr(original: Image.Image, reconstruction: Image.Image) -> float:
    """Peak signal-to-noise ratio of two same-sized pictures, in dB (0-255 scale)."""
    error = np.asarray(original, np.float64) - np.asarray(reconstruction, np.float64)
    mse = np.mean(error**2)
    return float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse))


def difference(
    original: Image.Image, reconstruction: Image.Image, gain: int = 4
) -> Image.Image:
    """|original - reconstruction| per pixel, times `gain` so that small errors show."""
    error = np.abs(
        np.asarray(original, np.int16) - np.asarray(reconstruction, np.int16)
    )
    return Image.fromarray(np.clip(error * gain, 0, 255).astype(np.uint8))
