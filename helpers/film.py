"""Films of the denoising loop: record every step's latents and predicted clean latents, then play them as a GIF.

GIFs are built in memory and shown in the page (``show_gif``); nothing is written to disk.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from IPython.display import Image as IPythonImage
from PIL import Image, ImageDraw

from .latents import decode_latents


@dataclass
class StepRecorder:
    """A ``denoise`` callback that keeps each step's timestep, latents and ``pred_original_sample`` (x̂_0).

    Schedulers that do not report x̂_0 (PNDM, DPM-Solver++) leave ``None`` in ``pred_original_samples``.
    """

    timesteps: list[int] = field(default_factory=list)
    latents: list[torch.Tensor] = field(default_factory=list)
    pred_original_samples: list[torch.Tensor | None] = field(default_factory=list)

    def __call__(self, i: int, t: torch.Tensor | int, output: Any) -> None:
        x0 = getattr(output, "pred_original_sample", None)
        self.timesteps.append(int(t))
        self.latents.append(
            output.prev_sample[:1].detach().clone()
        )  # (1, 4, h, w): the batch's first picture
        self.pred_original_samples.append(
            None if x0 is None else x0[:1].detach().clone()
        )


def decode_frames(
    vae: torch.nn.Module, latents: Sequence[torch.Tensor]
) -> list[Image.Image]:
    """Decode (1, 4, h, w) latents one at a time, so a long film fits in memory at any size."""
    if any(x is None for x in latents):
        raise ValueError(
            "a frame is missing: this scheduler does not report pred_original_sample"
        )
    return [decode_latents(vae, x)[0] for x in latents]


def gif_bytes(
    frames: Sequence[Image.Image],
    labels: Sequence[str] | None = None,
    size: int = 256,
    duration_ms: int = 150,
    hold_last_ms: int = 1500,
) -> bytes:
    """An animated GIF of ``frames`` (resized to ``size`` pixels wide, captioned with ``labels``), looping."""
    if not frames:
        raise ValueError("no frames for the GIF")
    width, height = frames[0].size
    resample = Image.Resampling.NEAREST if width < size else Image.Resampling.LANCZOS
    pictures = [
        frame.convert("RGB").resize((size, size * height // width), resample)
        for frame in frames
    ]
    for picture, label in zip(pictures, labels or []):
        draw = ImageDraw.Draw(picture)
        draw.rectangle((0, 0, 8 + 6 * len(label), 14), fill="black")
        draw.text((4, 2), label, fill="white")
    durations = [duration_ms] * (len(pictures) - 1) + [hold_last_ms]
    buffer = io.BytesIO()
    pictures[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=pictures[1:],
        duration=durations,
        loop=0,
    )
    return buffer.getvalue()


def show_gif(
    frames: Sequence[Image.Image], labels: Sequence[str] | None = None, **kwargs: Any
) -> IPythonImage:
    """The GIF of ``frames`` as a notebook output (Jupyter, Colab and the book's pages all play it)."""
    return IPythonImage(data=gif_bytes(frames, labels, **kwargs), format="gif")
