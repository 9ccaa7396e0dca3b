"""Is the hand-built loop as fast as the library's? ``python -m helpers.bench`` times both on the same inputs.

``helpers.pipeline.generate`` and ``StableDiffusionPipeline.__call__`` run on the same pipe, prompt, seed, scheduler
and step count. After one warm-up call of each, the runs alternate (hand then library, library then hand, ...) so a
shared machine's drift in speed falls on both. The table gives each run; the last line printed is one JSON object
with ``hand_over_library`` (the median of the per-run time ratios) and ``max_pixel_diff`` (0-255 scale).

    python -m helpers.bench --runs 7 --steps 25      # the chosen model (resolve_model)
    python -m helpers.bench --sd15-sized --steps 2   # random weights of SD v1.5's shapes, at 512x512
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import StableDiffusionPipeline

from .cli import add_count_option
from .compare import max_pixel_diff
from .models import load_pipeline, resolve_model
from .pipeline import generate
from .sd15 import sd15_sized_pipeline
from .timing import seconds_of


@dataclass
class Comparison:
    """Seconds per run of each contender, in run order, and how far their pictures differ."""

    hand: list[float]
    library: list[float]
    max_pixel_diff: int

    @property
    def hand_over_library(self) -> float:
        return statistics.median(h / lib for h, lib in zip(self.hand, self.library))

    def table(self) -> str:
        lines = [
            f"{'run':>4}  {'first':<8}{'hand (s)':>10}{'library (s)':>13}{'hand/library':>14}"
        ]
        for i, (h, lib) in enumerate(zip(self.hand, self.library)):
            lines.append(
                f"{i + 1:>4}  {'hand' if i % 2 == 0 else 'library':<8}{h:>10.3f}{lib:>13.3f}{h / lib:>14.3f}"
            )
        medians = f"{statistics.median(self.hand):>10.3f}{statistics.median(self.library):>13.3f}"
        lines.append(f"{'median':<14}{medians}{self.hand_over_library:>14.3f}")
        return "\n".join(lines)


@torch.no_grad()
def compare(
    pipe: StableDiffusionPipeline,
    prompt: str,
    num_inference_steps: int = 25,
    guidance_scale: float = 7.5,
    runs: int = 5,
    seed: int = 0,
) -> Comparison:
    """Time ``generate`` against ``pipe(...)`` on the same inputs, interleaved, after a warm-up of each.

    Turns the library pipeline's progress bar off (the hand loop's is off too), so both do the same work.
    """
    pipe.set_progress_bar_config(disable=True)

    def same_inputs() -> dict[str, Any]:
        """The settings both contenders draw with, and a fresh generator: each run starts from the same noise."""
        return {
            "num_inference_steps": num_inference_steps,
            "guidance_scale": guidance_scale,
            "generator": torch.Generator().manual_seed(seed),
        }

    contenders = {
        "hand": lambda: generate(pipe, prompt, **same_inputs(), progress=False),
        "library": lambda: pipe(prompt, **same_inputs()).images,
    }
    # warm-up, and the pictures to compare
    pictures = {name: fn() for name, fn in contenders.items()}
    seconds: dict[str, list[float]] = {"hand": [], "library": []}
    for run in range(runs):
        for name in ("hand", "library") if run % 2 == 0 else ("library", "hand"):
            seconds[name].append(seconds_of(contenders[name]))
    return Comparison(
        seconds["hand"],
        seconds["library"],
        max_pixel_diff(pictures["hand"], pictures["library"]),
    )


def main(argv: Sequence[str] | None = None) -> Comparison:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.bench", description=__doc__.split("\n")[0]
    )
    add_count_option(
        parser,
        "--runs",
        7,
        "timed runs of each contender",
        "a median needs one timed run or more",
    )
    add_count_option(
        parser,
        "--steps",
        25,
        "denoising steps per picture",
        "a picture needs one denoising step or more",
    )
    parser.add_argument("--guidance-scale", type=float, default=7.5)
    parser.add_argument("--prompt", default="a red circle on a blue background")
    parser.add_argument(
        "--sd15-sized",
        action="store_true",
        help="random weights of SD v1.5's shapes at 512x512",
    )
    args = parser.parse_args(argv)
    choice = resolve_model()
    pipe = (
        sd15_sized_pipeline(choice).to(choice.device)
        if args.sd15_sized
        else load_pipeline(choice=choice)
    )
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    print(
        f"{args.runs} interleaved runs of {args.steps} {type(pipe.scheduler).__name__} steps at {size}x{size}, "
        f"guidance {args.guidance_scale}, on {choice.device} (torch threads: {torch.get_num_threads()})"
    )
    result = compare(pipe, args.prompt, args.steps, args.guidance_scale, args.runs)
    print(result.table())
    print(
        json.dumps(
            {
                "hand_over_library": round(result.hand_over_library, 4),
                "max_pixel_diff": result.max_pixel_diff,
                "runs": args.runs,
                "steps": args.steps,
                "size": size,
                "device": choice.device,
            }
        )
    )
    return result


if __name__ == "__main__":
    main()
