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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers import (
    AutoencoderKL,
    PNDMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from PIL import Image
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from .cli import whole_number_at_least_1
from .models import (
    ModelChoice,
    load_component,
    load_pipeline,
    resolve_model,
    sd15_config,
)
from .pipeline import generate
from .tiny.config import SD15_SCHEDULER_CONFIG


def max_pixel_diff(images: Sequence[Image.Image], others: Sequence[Image.Image]) -> int:
    """The largest difference of any channel of any pixel between two lists of same-sized pictures (0-255)."""
    if len(images) != len(others):
        raise ValueError(f"{len(images)} pictures against {len(others)}")
    return max(
        int(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max())
        for a, b in zip(images, others)
    )


def sd15_sized_pipeline(
    choice: ModelChoice | None = None, seed: int = 0
) -> StableDiffusionPipeline:
    """A pipeline with SD v1.5's interfaces and random weights: cheap on a CPU, wrong-shaped nowhere that matters.

    Text embeddings are 768-d over 77 tokens, latents have 4 channels and the VAE's scale factor is 8 (SD's four
    resolution levels in both UNet and VAE); only depth and channel widths shrink. The tokenizer comes from the
    chosen model (the real CLIP tokenizer in both worlds) and the scheduler is SD v1.5's PNDM.
    """
    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config(
        sd15_config("unet", block_out_channels=[32, 64, 64, 64], layers_per_block=1)
    )
    vae = AutoencoderKL.from_config(
        sd15_config("vae", block_out_channels=[32, 32, 64, 64], layers_per_block=1)
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(**sd15_config("text_encoder", num_hidden_layers=2))
    )
    tokenizer = load_component(
        CLIPTokenizer, "tokenizer", choice or resolve_model(verbose=False)
    )
    return StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=PNDMScheduler.from_config(SD15_SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Wall time of ``fn()`` (waiting for the GPU to finish) and its result."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


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
    device = pipe.unet.device
    contenders = {
        "hand": lambda: generate(
            pipe,
            prompt,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            generator=torch.Generator().manual_seed(seed),
            progress=False,
        ),
        "library": lambda: (
            pipe(
                prompt,
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                generator=torch.Generator().manual_seed(seed),
            ).images
        ),
    }
    pictures = {
        name: fn() for name, fn in contenders.items()
    }  # warm-up, and the pictures to compare
    seconds: dict[str, list[float]] = {"hand": [], "library": []}
    for run in range(runs):
        for name in ("hand", "library") if run % 2 == 0 else ("library", "hand"):
            elapsed, _ = timed(contenders[name], device)
            seconds[name].append(elapsed)
    return Comparison(
        seconds["hand"],
        seconds["library"],
        max_pixel_diff(pictures["hand"], pictures["library"]),
    )


def main(argv: Sequence[str] | None = None) -> Comparison:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--runs",
        type=whole_number_at_least_1("a median needs one timed run or more"),
        default=7,
        help="timed runs of each contender (default 7)",
    )
    parser.add_argument(
        "--steps",
        type=whole_number_at_least_1("a picture needs one denoising step or more"),
        default=25,
        help="denoising steps per picture (default 25)",
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
