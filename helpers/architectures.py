"""The models that came after Stable Diffusion v1.5, built from their real configs on the ``meta`` device.

Chapter 11 takes SD 2, SDXL (and its refiner), SD3 and FLUX apart against v1.5 without a single weight: each part is
built from its published config on PyTorch's ``meta`` device, where a parameter has a shape and a dtype but no
storage, so FLUX's 12-billion-parameter transformer costs no memory and no download. The configs ship in
``helpers/configs/<model>/<part>.json``; ``helpers/configs/sources.json`` names the hub repository and file each one
comes from. SD v1.5's own configs are the ones chapter 8 uses, in ``helpers/sd15_configs``.

The chapter also writes the rectified-flow step by hand (``flow_match_step``) and proves it equal to diffusers'
``FlowMatchEulerDiscreteScheduler.step``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import diffusers
import torch
import transformers
from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from .models import REAL_MODEL_ID
from .sd15 import SD15_CONFIG_DIR, sd15_config

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
MODELS = ("sd15", "sd2", "sdxl", "sdxl_refiner", "sd3", "flux")
SCHEDULER = "scheduler"  # the part without weights


@dataclass(frozen=True)
class PublishedSize:
    """A parameter count as its authors published it, and where."""

    parts: tuple[
        tuple[str, str], ...
    ]  # (model, part) pairs whose parameters add up to the figure
    parameters: float
    source: str


# Rounded figures from papers and model cards; chapter 11 asserts that the configs agree within TOLERANCE.
PUBLISHED_SIZES = {
    "SD v1.5 UNet": PublishedSize(
        (("sd15", "unet"),), 860e6, "Podell et al. 2023, Table 1"
    ),
    "CLIP ViT-L/14 text encoder": PublishedSize(
        (("sd15", "text_encoder"),),
        123e6,
        "Rombach et al. 2022, the CompVis/stable-diffusion README",
    ),
    "SD 2 UNet": PublishedSize(
        (("sd2", "unet"),), 865e6, "Podell et al. 2023, Table 1"
    ),
    "SDXL UNet": PublishedSize(
        (("sdxl", "unet"),), 2.6e9, "Podell et al. 2023, Table 1"
    ),
    "SDXL's two text encoders": PublishedSize(
        (("sdxl", "text_encoder"), ("sdxl", "text_encoder_2")),
        817e6,
        "Podell et al. 2023, section 2.1",
    ),
    "SD3 Medium MMDiT": PublishedSize(
        (("sd3", "transformer"),), 2e9, "the stable-diffusion-3-medium model card"
    ),
    "T5-XXL encoder": PublishedSize(
        (("sd3", "text_encoder_3"),), 4.7e9, "Esser et al. 2024"
    ),
    "FLUX.1 transformer": PublishedSize(
        (("flux", "transformer"),), 12e9, "the FLUX.1 [schnell] model card"
    ),
}
TOLERANCE = 0.03  # published figures are rounded to two or three digits


def config_dir(model: str) -> Path:
    """The folder that holds ``model``'s configs."""
    if model not in MODELS:
        raise ValueError(
            f"unknown model {model!r}: expected one of {', '.join(MODELS)}"
        )
    return SD15_CONFIG_DIR if model == "sd15" else CONFIG_DIR / model


def parts(model: str) -> list[str]:
    """The parts of ``model`` that hold weights, e.g. ``["text_encoder", "text_encoder_2", "unet", "vae"]``."""
    return sorted(
        path.stem for path in config_dir(model).glob("*.json") if path.stem != SCHEDULER
    )


def architecture_config(model: str, part: str, **overrides: Any) -> dict[str, Any]:
    """The published config of one part of ``model`` (``"sdxl"``, ``"unet"``), with single entries overridden."""
    if model == "sd15":
        return sd15_config(part, **overrides)
    path = config_dir(model) / f"{part}.json"
    if not path.exists():
        known = parts(model) + (
            [SCHEDULER] if (config_dir(model) / f"{SCHEDULER}.json").exists() else []
        )
        raise ValueError(
            f"{model} has no part {part!r}: expected one of {', '.join(known)}"
        )
    return {**json.loads(path.read_text()), **overrides}


@lru_cache
def sources() -> dict[str, Any]:
    """``helpers/configs/sources.json``: for each model, its hub repository and where each config came from."""
    return json.loads((CONFIG_DIR / "sources.json").read_text())


def hub_repository(model: str) -> str:
    """The hub repository whose configs ``model`` ships, e.g. ``stabilityai/stable-diffusion-xl-base-1.0``."""
    config_dir(model)  # rejects unknown names
    return REAL_MODEL_ID if model == "sd15" else sources()[model]["repo"]


def build_on_meta(model: str, part: str, **overrides: Any) -> torch.nn.Module:
    """One part built from its config on the meta device: real shapes, no storage,
    no download.

    diffusers configs name their class in ``_class_name``; transformers configs in
    ``architectures``.
    """
    config = architecture_config(model, part, **overrides)
    with torch.device("meta"):
        if "_class_name" in config:
            return getattr(diffusers, config["_class_name"]).from_config(config)
        text_config = transformers.AutoConfig.for_model(**config)
        return getattr(transformers, config["architectures"][0])(text_config)


def build_scheduler(model: str, **overrides: Any) -> SchedulerMixin:
    """The model's published scheduler (schedulers hold no weights, so it is a real one)."""
    config = architecture_config(model, SCHEDULER, **overrides)
    return getattr(diffusers, config["_class_name"]).from_config(config)


def published_size_agrees(
    size: PublishedSize, counts: dict[tuple[str, str], int]
) -> bool:
    """Whether the parameters counted for ``size.parts`` are within ``TOLERANCE`` of the published figure."""
    counted = sum(counts[part] for part in size.parts)
    return abs(counted - size.parameters) <= TOLERANCE * size.parameters


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """SD3's timestep shift, sigma' = s sigma / (1 + (s - 1) sigma): more of the steps at high noise for s > 1."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def flow_match_step(
    velocity: torch.Tensor,
    sigma: float | torch.Tensor,
    sigma_next: float | torch.Tensor,
    latents: torch.Tensor,
) -> torch.Tensor:
    """One Euler step of rectified flow from noise level ``sigma`` to ``sigma_next``.

    The model predicts the velocity v = noise - x_0 of the straight path
    x_sigma = (1 - sigma) x_0 + sigma noise, so moving along it is
    x_next = x + (sigma_next - sigma) v. Like the library, the sum is taken in float32
    (a half-precision model's small steps would otherwise round away) and the result
    has the model's dtype.
    """
    # (B, C, h, w), float32
    next_latents = latents.float() + (sigma_next - sigma) * velocity
    return next_latents.to(velocity.dtype)


def library_time_ids(
    model: str,
    original_size: tuple[int, int],
    crops_coords_top_left: tuple[int, int],
    target_size: tuple[int, int] | None = None,
    aesthetic_score: float | None = None,
) -> torch.Tensor:
    """SDXL's micro-conditioning ``add_time_ids`` as the library's own pipelines make them, (1, 6) or (1, 5).

    The base model (``"sdxl"``) reads the original size, the crop's top-left corner and the target size; the
    refiner (``"sdxl_refiner"``) reads the aesthetic score in place of the target size. The pipelines' private
    ``_get_add_time_ids`` also checks the count against the UNet's ``add_embedding``, so it is called with the
    model's UNet built on the meta device standing in for the pipeline.
    """
    unet = build_on_meta(model, "unet")
    projection_dim = architecture_config(model, "text_encoder_2")[
        "projection_dim"
    ]  # the pooled embedding's width
    if model == "sdxl_refiner":
        refiner = SimpleNamespace(
            unet=unet, config=SimpleNamespace(requires_aesthetics_score=True)
        )
        time_ids, _ = StableDiffusionXLImg2ImgPipeline._get_add_time_ids(
            refiner,
            original_size,
            crops_coords_top_left,
            target_size,
            aesthetic_score,
            2.5,
            original_size,
            crops_coords_top_left,
            target_size,
            torch.float32,
            projection_dim,
        )
        return time_ids
    return StableDiffusionXLPipeline._get_add_time_ids(
        SimpleNamespace(unet=unet),
        original_size,
        crops_coords_top_left,
        target_size,
        torch.float32,
        projection_dim,
    )
