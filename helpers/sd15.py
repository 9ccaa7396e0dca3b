"""Stable Diffusion v1.5 without its weights: its configs, its parts on the ``meta`` device, and a small random
pipeline of its shapes.

The configs ship in ``helpers/sd15_configs`` (copied from the hub repository), so no chapter needs the network to
read them. Chapter 8 builds the real parts on the ``meta`` device, where every parameter has its shape and dtype but
no storage, to count bytes without a download; ``sd15_sized_pipeline`` is the one SD-sized pipeline with random
weights that the tests, the checks and ``python -m helpers.bench --sd15-sized`` use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import diffusers
import torch
from diffusers import PNDMScheduler, StableDiffusionPipeline
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from .models import ModelChoice, load_component, resolve_model

SD15_CONFIG_DIR = Path(__file__).resolve().parent / "sd15_configs"


def sd15_config(part: str, **overrides: Any) -> dict[str, Any]:
    """SD v1.5's own config of ``"unet"``, ``"vae"``, ``"text_encoder"``, ``"unet_inpainting"`` or ``"scheduler"``.

    ``overrides`` change single entries, e.g. ``layers_per_block=1`` for a cheaper model of the same shapes.
    """
    path = SD15_CONFIG_DIR / f"{part}.json"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in SD15_CONFIG_DIR.glob("*.json")))
        raise ValueError(f"unknown part {part!r}: expected one of {known}")
    return {**json.loads(path.read_text()), **overrides}


def sd15_model(part: str, **overrides: Any) -> torch.nn.Module:
    """One of SD v1.5's parts with random weights, built from its config (``overrides`` shrink it)."""
    config = sd15_config(part, **overrides)
    if part == "text_encoder":
        return CLIPTextModel(CLIPTextConfig(**config))
    return getattr(diffusers, config["_class_name"]).from_config(config)


def sd15_on_meta(part: str) -> torch.nn.Module:
    """SD v1.5's ``"unet"``, ``"vae"`` or ``"text_encoder"`` at full size on the meta device: shapes, no storage."""
    with torch.device("meta"):
        return sd15_model(part)


def sd15_sized_pipeline(
    choice: ModelChoice | None = None, seed: int = 0
) -> StableDiffusionPipeline:
    """A pipeline with SD v1.5's interfaces and random weights: cheap on a CPU, wrong-shaped nowhere that matters.

    Text embeddings are 768-d over 77 tokens, latents have 4 channels and the VAE's scale factor is 8 (SD's four
    resolution levels in both UNet and VAE); only depth and channel widths shrink. The tokenizer comes from the
    chosen model (the real CLIP tokenizer in both worlds) and the scheduler is SD v1.5's PNDM.
    """
    torch.manual_seed(seed)
    unet = sd15_model("unet", block_out_channels=[32, 64, 64, 64], layers_per_block=1)
    vae = sd15_model("vae", block_out_channels=[32, 32, 64, 64], layers_per_block=1)
    text_encoder = sd15_model("text_encoder", num_hidden_layers=2)
    tokenizer = load_component(
        CLIPTokenizer, "tokenizer", choice or resolve_model(verbose=False)
    )
    return StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=PNDMScheduler.from_config(sd15_config("scheduler")),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
