"""The course's helpers: pick a device and a model, move pictures in and out of latents, and show them.

Chapters import from here (``from helpers import preprocess, encode_image, decode_latents, image_grid``); later
chapters import what earlier ones built step by step, so each piece exists once.
"""

from .device import Measurement, measure, pick_device, pick_dtype
from .images import image_grid, load_sample_image, numpy_to_pil, show_images, to_pil
from .latents import decode_latents, encode_image, preprocess, vae_scale_factor
from .models import (
    REAL_CLIP_ID,
    REAL_MODEL_ID,
    TINY_MODEL_DIR,
    ModelChoice,
    load_clip,
    load_component,
    load_pipeline,
    resolve_model,
)
from .quiet import quiet_libraries
from .sd15 import sd15_config
from .tables import markdown_table

__all__ = [
    "REAL_CLIP_ID",
    "REAL_MODEL_ID",
    "TINY_MODEL_DIR",
    "Measurement",
    "ModelChoice",
    "decode_latents",
    "encode_image",
    "image_grid",
    "load_clip",
    "load_component",
    "load_pipeline",
    "load_sample_image",
    "markdown_table",
    "measure",
    "numpy_to_pil",
    "pick_device",
    "pick_dtype",
    "preprocess",
    "quiet_libraries",
    "resolve_model",
    "sd15_config",
    "show_images",
    "to_pil",
    "vae_scale_factor",
]
