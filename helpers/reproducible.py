"""The same starting noise on every call and every device: a seeded CPU generator, and the library pipeline's
pictures drawn from one.

Noise drawn on a CPU generator is the same on any machine (a CUDA generator's is not), so a chapter that compares
pictures (two schedulers, a switch on and off, the hand-built loop against the library's) draws each from
``seeded()`` and changes one thing at a time.
"""

from __future__ import annotations

import torch
from diffusers import DiffusionPipeline
from PIL import Image


def seeded(seed: int = 0) -> torch.Generator:
    """A fresh CPU generator: the same starting noise on every device."""
    return torch.Generator().manual_seed(seed)


def draw(
    pipe: DiffusionPipeline, prompt: str | list[str], seed: int = 0, **kwargs
) -> list[Image.Image]:
    """``pipe``'s pictures of ``prompt``, their starting noise drawn from ``seeded(seed)``; ``kwargs`` go to the call
    (``num_inference_steps``, ``output_type``, ...)."""
    return pipe(prompt, generator=seeded(seed), **kwargs).images
