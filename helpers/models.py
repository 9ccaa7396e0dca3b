"""Which Stable Diffusion the course runs, and loading it through the real ``from_pretrained``.

Two worlds, one code path: the real Stable Diffusion v1.5 on a CUDA GPU with the model hub reachable, and
tiny-shapes-sd (a small model of the same shape, trained by this repository and shipped inside ``helpers``) on any
CPU, offline. ``SD_BOOK_MODEL`` (a hub id or a local folder) overrides the choice.
"""

from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import DiffusionPipeline, StableDiffusionPipeline
from safetensors.torch import load_file
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTextModel, CLIPTokenizer

from .device import pick_device, pick_dtype

REAL_MODEL_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"
REAL_CLIP_ID = "openai/clip-vit-large-patch14"  # the CLIP whose text tower SD v1.5 uses
TINY_MODEL_DIR = Path(__file__).resolve().parent / "tiny_shapes_sd"


@dataclass(frozen=True)
class ModelChoice:
    """A model (hub id or folder), where it runs, and why it was chosen."""

    model: str
    device: str
    dtype: torch.dtype
    reason: str

    @property
    def is_local(self) -> bool:
        return Path(self.model).is_dir()

    @property
    def is_tiny(self) -> bool:
        """True for tiny-shapes-sd (or any folder of its format, which carries its own ``clip/``)."""
        return self.is_local and (Path(self.model) / "clip").is_dir()

    @property
    def name(self) -> str:
        return "tiny-shapes-sd" if self.is_tiny else self.model

    def __str__(self) -> str:
        return f"Model: {self.name} on {self.device}, {str(self.dtype).removeprefix('torch.')} ({self.reason})"


def hub_reachable(timeout: float = 3.0) -> bool:
    """True if the Hugging Face hub answers (and ``HF_HUB_OFFLINE`` is not set)."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False"):
        return False
    try:
        urllib.request.urlopen(f"https://huggingface.co/api/models/{REAL_MODEL_ID}", timeout=timeout)
        return True
    except OSError:
        return False


def resolve_model(verbose: bool = True) -> ModelChoice:
    """``SD_BOOK_MODEL`` if set; else real SD v1.5 on CUDA with the hub reachable; else tiny-shapes-sd.

    Prints one line saying which model, on which device and dtype, and why. Only a CUDA machine asks the network.
    """
    device = pick_device()
    if os.environ.get("SD_BOOK_MODEL"):
        choice = ModelChoice(os.environ["SD_BOOK_MODEL"], device, pick_dtype(device), "set by SD_BOOK_MODEL")
    elif device == "cuda" and hub_reachable():
        choice = ModelChoice(REAL_MODEL_ID, device, pick_dtype(device), "CUDA GPU and the model hub are available")
    else:
        why = "no CUDA GPU" if device != "cuda" else "the model hub is unreachable"
        choice = ModelChoice(str(TINY_MODEL_DIR), device, torch.float32, f"{why}: the bundled CPU-sized model")
    if choice.is_local and not (Path(choice.model) / "model_index.json").exists():
        raise FileNotFoundError(
            f"no pipeline folder at {choice.model}: expected a diffusers folder with model_index.json "
            "(tiny-shapes-sd is trained with `python -m helpers.tiny train`)"
        )
    if verbose:
        print(choice)
    return choice


def load_pipeline(pipeline_class: type[DiffusionPipeline] = StableDiffusionPipeline,
                  choice: ModelChoice | None = None, **kwargs: Any) -> DiffusionPipeline:
    """The chosen model as ``pipeline_class``, on its device and dtype, without the safety checker.

    The safety checker (and the feature extractor that feeds it) is a second, 1.2 GB CLIP model that blacks out
    pictures it flags; the course leaves it out, as ``safety_checker=None`` says.
    """
    choice = choice or resolve_model()
    pipe = pipeline_class.from_pretrained(
        choice.model, dtype=choice.dtype, use_safetensors=True, local_files_only=choice.is_local,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False, **kwargs,
    )
    return pipe.to(choice.device)


def load_component(component_class: type, subfolder: str, choice: ModelChoice | None = None) -> Any:
    """One part of the pipeline (``subfolder="vae"``, ``"unet"``, ``"text_encoder"``, ``"tokenizer"``, ...)."""
    choice = choice or resolve_model()
    if choice.is_local and not (Path(choice.model) / subfolder).is_dir():
        parts = sorted(path.name for path in Path(choice.model).iterdir() if path.is_dir())
        raise ValueError(f"{choice.name} has no part {subfolder!r}: expected one of {', '.join(parts)}")
    kwargs: dict[str, Any] = {"subfolder": subfolder, "local_files_only": choice.is_local}
    if not hasattr(component_class, "to"):  # tokenizers and schedulers have no weights
        return component_class.from_pretrained(choice.model, **kwargs)
    model = component_class.from_pretrained(choice.model, dtype=choice.dtype, use_safetensors=True, **kwargs)
    return model.to(choice.device)


def load_clip(choice: ModelChoice | None = None) -> tuple[CLIPModel, CLIPProcessor]:
    """The full CLIP (text and vision towers) that goes with the model, and its processor.

    For SD v1.5 that is ``openai/clip-vit-large-patch14``. tiny-shapes-sd stores its CLIP's text tower once, as the
    pipeline's ``text_encoder``; ``clip/`` holds the config, the vision tower and the projections.
    """
    choice = choice or resolve_model()
    if not choice.is_tiny:
        model = CLIPModel.from_pretrained(REAL_CLIP_ID, dtype=choice.dtype, use_safetensors=True)
        return model.to(choice.device), CLIPProcessor.from_pretrained(REAL_CLIP_ID)
    folder = Path(choice.model)
    model = CLIPModel(CLIPConfig.from_pretrained(folder / "clip"))
    model.text_model = CLIPTextModel.from_pretrained(folder / "text_encoder", local_files_only=True)
    missing, unexpected = model.load_state_dict(load_file(folder / "clip" / "model.safetensors"), strict=False)
    if unexpected or any(not key.startswith("text_model.") for key in missing):
        raise RuntimeError(f"clip/ does not match its config: missing {missing}, unexpected {unexpected}")
    processor = CLIPProcessor(image_processor=CLIPImageProcessor.from_pretrained(folder / "clip"),
                              tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"))
    return model.to(choice.device, choice.dtype).eval(), processor


SD15_CONFIG_DIR = Path(__file__).resolve().parent / "sd15_configs"


def sd15_config(part: str, **overrides: Any) -> dict[str, Any]:
    """SD v1.5's own config of ``"unet"``, ``"vae"`` or ``"text_encoder"``, shipped so it needs no network.

    ``overrides`` change single entries, e.g. ``layers_per_block=1`` for a cheaper model of the same shapes.
    """
    path = SD15_CONFIG_DIR / f"{part}.json"
    if not path.exists():
        raise ValueError(f"unknown part {part!r}: expected one of unet, vae, text_encoder")
    return {**json.loads(path.read_text()), **overrides}
