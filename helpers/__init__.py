"""The course's helpers: pick a device and a model, move pictures in and out of latents, and show them.

Chapters import from here (``from helpers import preprocess, encode_image, decode_latents, image_grid``); later
chapters import what earlier ones built step by step, so each piece exists once.
"""

from transformers.utils import logging as _transformers_logging

# diffusers' Stable Diffusion module imports CLIPImageProcessor, which warns where torchvision is missing (as on
# CPU-only installs) that it falls back to the PIL version. That fallback is all the course needs, so the import
# happens here, quietly; chapters import helpers before diffusers.
_verbosity = _transformers_logging.get_verbosity()
_transformers_logging.set_verbosity_error()
from diffusers import StableDiffusionPipeline  # noqa: E402,F401
from diffusers.utils import logging as _diffusers_logging  # noqa: E402

_transformers_logging.set_verbosity(_verbosity)
# No "Loading weights" bars on every page of the book; the denoising loops keep theirs.
_transformers_logging.disable_progress_bar()
_diffusers_logging.disable_progress_bar()

from . import budget as _budget
from .device import Measurement, measure, pick_device, pick_dtype
from .images import (
    image_grid,
    load_sample_image,
    markdown_table,
    numpy_to_pil,
    preprocess,
    show_images,
    to_pil,
    vae_scale_factor,
)
from .latents import decode_latents, encode_image
from .models import (
    REAL_CLIP_ID,
    REAL_MODEL_ID,
    TINY_MODEL_DIR,
    ModelChoice,
    load_clip,
    load_component,
    load_pipeline,
    resolve_model,
    sd15_config,
)

__all__ = [
    "Measurement", "ModelChoice", "REAL_CLIP_ID", "REAL_MODEL_ID", "TINY_MODEL_DIR", "decode_latents",
    "encode_image", "image_grid", "load_clip", "load_component", "load_pipeline", "load_sample_image",
    "markdown_table", "measure", "numpy_to_pil", "pick_device", "pick_dtype", "preprocess", "resolve_model",
    "sd15_config", "show_images", "to_pil", "vae_scale_factor",
]

_budget.start_if_asked()  # only where SD_BOOK_BUDGET_FILE is set: the tests' GPU-world budget (helpers/budget.py)
