"""A budget for the GPU world, counted on a CPU: about how long a chapter takes on Colab's T4 with SD v1.5.

With ``SD_BOOK_BUDGET_FILE`` set (the tests set it for each chapter they run), the chapter's kernel starts a tally
as it starts (``start_if_asked``), ``resolve_model`` tells it the chapter's model, and ``load_component`` hands it every part it loads for
that model (in any dtype): the parts that, on a GPU, are SD v1.5's. The tally counts their work in units of the GPU
world, whatever the size of the model that runs here:

- UNet calls, as guided calls at the native size (a batch of 2 at ``unet.config.sample_size``: one step of one
  picture with classifier-free guidance); a call with gradients counts three times (forward and backward);
- pictures decoded by the VAE, at the native picture size;
- parts loaded;
- the CPU seconds spent outside those parts (imports, plotting, CPU-side work): the GPU world spends them too.
  CPU time (``time.process_time``), not wall time, so that a busy machine does not inflate them.

When the process ends it writes them to that file as JSON; ``t4_seconds`` turns them into an estimate.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

# SD v1.5 in float16 on Colab's T4 (16 GB, 65 TFLOPS of float16).
# one UNet call on a batch of 2 at 64x64 latents (512x512 pixels)
T4_SECONDS_PER_GUIDED_CALL = 0.14
T4_SECONDS_PER_DECODE = 0.25  # the VAE decoder on one 512x512 picture
# one part (UNet, VAE, text encoder) from Colab's disk onto the GPU
T4_SECONDS_PER_PART_LOAD = 5.0
T4_SECONDS_SETUP = 90.0  # the setup cell's pip install and the first download of SD v1.5's fp16 weights (~2 GB)
GRADIENT_FACTOR = 3  # a call with gradients costs about three calls: the forward and a backward twice as long


@dataclasses.dataclass
class Tally:
    """What one process has counted so far."""

    guided_calls: float = 0.0
    decoded_pictures: float = 0.0
    part_loads: int = 0
    seconds_in_parts: float = 0.0
    started: float = (
        0.0  # CPU seconds are counted from the process start: the imports count too
    )

    def as_json(self) -> dict[str, float]:
        elsewhere = time.process_time() - self.started - self.seconds_in_parts
        return {
            "guided_calls": self.guided_calls,
            "decoded_pictures": self.decoded_pictures,
            "part_loads": self.part_loads,
            "cpu_seconds_elsewhere": elsewhere,
        }


def t4_seconds(counts: dict[str, float]) -> float:
    """The estimated seconds on a T4 of a chapter's counts (as ``Tally.as_json`` writes them)."""
    return (
        T4_SECONDS_SETUP
        + counts["guided_calls"] * T4_SECONDS_PER_GUIDED_CALL
        + counts["decoded_pictures"] * T4_SECONDS_PER_DECODE
        + counts["part_loads"] * T4_SECONDS_PER_PART_LOAD
        + counts["cpu_seconds_elsewhere"]
    )


_tally: Tally | None = None
_chapter_choice: Any = None  # the ModelChoice that resolve_model made


def start_if_asked() -> None:
    """Start the tally where ``SD_BOOK_BUDGET_FILE`` names a file; it is written there when the process ends.

    Nothing calls it on import: the tests' chapter kernels call it as they start (``tests/budget_plugin.py``).
    """
    global _tally
    path = os.environ.get("SD_BOOK_BUDGET_FILE")
    if path and _tally is None:
        _tally = Tally()
        atexit.register(
            lambda: Path(path).write_text(json.dumps(_tally.as_json(), indent=1))
        )


def chapter_model(choice: Any) -> None:
    """Remember the choice ``resolve_model`` made: parts loaded for it are the chapter's model."""
    global _chapter_choice
    _chapter_choice = choice


def track(model: torch.nn.Module, choice: Any) -> None:
    """Count the work of ``model`` if a tally runs and ``model`` belongs to the chapter's model (any dtype)."""
    if _tally is None or _chapter_choice is None:
        return
    if dataclasses.replace(choice, dtype=_chapter_choice.dtype) != _chapter_choice:
        return  # e.g. chapter 7's tiny-shapes-sd, which stays on the CPU in both worlds
    _tally.part_loads += 1
    config = getattr(model, "config", None)
    if hasattr(config, "cross_attention_dim"):  # a UNet2DConditionModel
        _count_calls(
            model, config.sample_size, per_call=0.5
        )  # a guided call is a batch of 2
    elif hasattr(model, "decoder") and hasattr(
        config, "block_out_channels"
    ):  # an AutoencoderKL
        native = config.sample_size // 2 ** (len(config.block_out_channels) - 1)
        _count_calls(model.decoder, native, per_call=1.0, decoder=True)


def _count_calls(
    module: torch.nn.Module, native_side: int, per_call: float, decoder: bool = False
) -> None:
    """Hooks that add each call's work, scaled to the native size, and the CPU time spent inside it."""
    entered: list[float] = []

    def before(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        # (B, C, h, w)
        sample = args[0] if args else kwargs.get("sample", kwargs.get("z"))
        units = (
            per_call
            * sample.shape[0]
            * sample.shape[-2]
            * sample.shape[-1]
            / native_side**2
        )
        if decoder:
            _tally.decoded_pictures += units
        else:
            _tally.guided_calls += units * (
                GRADIENT_FACTOR if torch.is_grad_enabled() else 1
            )
        entered.append(time.process_time())

    def after(module: torch.nn.Module, args: tuple, output: Any) -> None:
        _tally.seconds_in_parts += time.process_time() - entered.pop()

    module.register_forward_pre_hook(before, with_kwargs=True)
    module.register_forward_hook(after)
