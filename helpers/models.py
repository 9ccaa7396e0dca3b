"""Which Stable Diffusion the course runs, and loading it through the real ``from_pretrained``.

Two worlds, one code path: the real Stable Diffusion v1.5 on a CUDA GPU with the model hub reachable, and
tiny-shapes-sd (a small model of the same shape, trained by this repository and shipped inside ``helpers``) on any
CPU, offline. ``SD_BOOK_MODEL`` (a hub id or a local folder) overrides the choice.

Loading never fails silently: a checkpoint whose weights do not match its model (which would leave those weights
random), or a model that comes back in another dtype than the one asked for, stops with a message.
"""

from __future__ import annotations

import importlib
import os
import re
import socket
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import DiffusionPipeline, StableDiffusionPipeline
from huggingface_hub import try_to_load_from_cache
from safetensors.torch import load_file
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPProcessor,
    CLIPTextModel,
    CLIPTokenizer,
)

from . import budget
from .device import pick_device, pick_dtype

REAL_MODEL_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"
REAL_CLIP_ID = "openai/clip-vit-large-patch14"  # the CLIP whose text tower SD v1.5 uses
TINY_MODEL_DIR = Path(__file__).resolve().parent / "tiny_shapes_sd"
# tiny-shapes-sd's ControlNet (chapter 9), trained by `python -m helpers.tiny controlnet`
TINY_CONTROLNET_DIR = Path(__file__).resolve().parent / "tiny_controlnet"
HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")  # "owner/name" (or a bare legacy "name")

# What each part of a pipeline folder does, in the course's words, for the messages about a missing part.
PART_ROLES = {
    "vae": "the VAE, which turns pictures into latents and back",
    "text_encoder": "the text encoder, which turns the prompt into embeddings",
    "tokenizer": "the tokenizer, which splits the prompt into token ids",
    "unet": "the UNet, which predicts the noise",
    "scheduler": "the scheduler, which steps from noise to clean latents",
    "clip": "the full CLIP (text and vision towers) that load_clip() loads",
}
LEFT_OUT = (
    "safety_checker",
    "feature_extractor",
)  # the course loads pipelines without them


@dataclass(frozen=True)
class ModelChoice:
    """A model (hub id or folder), where it runs, and why it was chosen."""

    model: str
    device: str
    dtype: torch.dtype
    reason: str

    @property
    def is_local(self) -> bool:
        """True for a folder on this machine: anything that is a folder, or does not read as a hub id."""
        return Path(self.model).expanduser().is_dir() or not looks_like_hub_id(
            self.model
        )

    @property
    def is_tiny(self) -> bool:
        """True for tiny-shapes-sd (or any folder of its format, which carries its own ``clip/``)."""
        return self.is_local and (Path(self.model) / "clip").is_dir()

    @property
    def name(self) -> str:
        return "tiny-shapes-sd" if self.is_tiny else self.model

    def __str__(self) -> str:
        return f"Model: {self.name} on {self.device}, {str(self.dtype).removeprefix('torch.')} ({self.reason})"


def looks_like_hub_id(value: str) -> bool:
    """``owner/name`` reads as a hub id; ``/abs``, ``./rel``, ``~/x``, ``a/b/c`` or ``C:\\x`` read as paths."""
    return HUB_ID.fullmatch(value) is not None and not value.startswith(".")


@dataclass(frozen=True)
class HubCheck:
    """What asking the model hub found: whether it answered, and in words, why not."""

    reachable: bool
    detail: str

    def __bool__(self) -> bool:
        return self.reachable


def hub_reachable(
    attempts: int = 3,
    timeout: float = 4.0,
    backoff: float = 1.0,
    opener: Callable[..., Any] = urllib.request.urlopen,
    sleep: Callable[[float], None] = time.sleep,
) -> HubCheck:
    """Ask the Hugging Face hub (unless ``HF_HUB_OFFLINE`` is set), up to ``attempts`` times with backoff.

    Tells "unreachable" (no connection at all) from "slow or rate-limited" (timeouts, HTTP 429 and 5xx): both fall
    back to the tiny model, but the message says which. Each retry waits ``backoff * 2**i`` seconds and allows twice
    the time, so a slow hub gets a chance a single 3 s try never gave it.
    """
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False"):
        return HubCheck(False, "HF_HUB_OFFLINE is set")
    detail = ""
    for attempt in range(attempts):
        if attempt:
            sleep(backoff * 2 ** (attempt - 1))
        try:
            opener(
                f"https://huggingface.co/api/models/{REAL_MODEL_ID}",
                timeout=timeout * 2**attempt,
            )
            return HubCheck(True, "the model hub answered")
        except urllib.error.HTTPError as error:
            if error.code != 429 and error.code < 500:
                return HubCheck(True, f"the model hub answered (HTTP {error.code})")
            detail = f"the model hub is slow or rate-limited (HTTP {error.code})"
        except TimeoutError as error:
            detail = f"the model hub is slow (no answer within {timeout * 2**attempt:g} s: {error})"
        except urllib.error.URLError as error:
            slow = isinstance(error.reason, (TimeoutError, socket.timeout))
            detail = (
                f"the model hub is {'slow' if slow else 'unreachable'} ({error.reason})"
            )
        except OSError as error:
            detail = f"the model hub is unreachable ({error})"
    return HubCheck(False, f"{detail}, after {attempts} tries")


def resolve_model(verbose: bool = True) -> ModelChoice:
    """``SD_BOOK_MODEL`` if set; else real SD v1.5 on CUDA with the hub reachable; else tiny-shapes-sd.

    Prints one line saying which model, on which device and dtype, and why. Only a CUDA machine asks the network.
    A folder is checked here, so a wrong one stops before anything loads.
    """
    device = pick_device()
    if os.environ.get("SD_BOOK_MODEL"):
        choice = ModelChoice(
            os.environ["SD_BOOK_MODEL"],
            device,
            pick_dtype(device),
            "set by SD_BOOK_MODEL",
        )
    elif device == "cuda" and (hub := hub_reachable()):
        choice = ModelChoice(
            REAL_MODEL_ID,
            device,
            pick_dtype(device),
            "CUDA GPU and the model hub are available",
        )
    else:
        why = "no CUDA GPU" if device != "cuda" else hub.detail
        choice = ModelChoice(
            str(TINY_MODEL_DIR),
            device,
            torch.float32,
            f"{why}: the bundled CPU-sized model",
        )
        if device == "cuda":
            warnings.warn(
                f"A CUDA GPU is here, but {hub.detail}: this chapter runs tiny-shapes-sd, the small offline "
                f"model, NOT Stable Diffusion v1.5. To force the real model, run "
                f'os.environ["SD_BOOK_MODEL"] = "{REAL_MODEL_ID}" before resolve_model() (or restart the runtime '
                "and run the chapter again when the hub answers).",
                stacklevel=2,
            )
    if choice.is_local:
        check_pipeline_folder(choice)
    if verbose:
        print(choice)
    budget.chapter_model(choice)
    return choice


def _as_set_by(choice: ModelChoice) -> str:
    """How a message names the model: with SD_BOOK_MODEL when the learner set it."""
    setter = "SD_BOOK_MODEL=" if choice.reason == "set by SD_BOOK_MODEL" else ""
    return f"{setter}{choice.model}"


def check_pipeline_folder(choice: ModelChoice) -> None:
    """A local choice is a diffusers pipeline folder with every part its ``model_index.json`` lists."""
    folder = Path(choice.model).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{_as_set_by(choice)} is taken as a local folder (it reads as a path, not a hub id like "
            f"{REAL_MODEL_ID!r}), but there is no folder there. Fix the path, or unset SD_BOOK_MODEL to let the "
            "course choose (tiny-shapes-sd on a CPU)."
        )
    if not (folder / "model_index.json").exists():
        raise FileNotFoundError(
            f"{_as_set_by(choice)} is a folder but not a pipeline: it has no model_index.json. Point it at a "
            f"diffusers folder (one with model_index.json, unet/, vae/, ...), such as {TINY_MODEL_DIR} "
            "(tiny-shapes-sd, which `python -m helpers.tiny train` rebuilds)."
        )
    for part in pipeline_parts(choice):
        require_part(choice, part)


def pipeline_parts(choice: ModelChoice) -> list[str]:
    """The parts ``model_index.json`` lists (with a class), less the ones the course leaves out."""
    index = DiffusionPipeline.load_config(
        choice.model, local_files_only=choice.is_local
    )
    return [
        name
        for name, value in index.items()
        if not name.startswith("_")
        and isinstance(value, list)
        and value[0] is not None
        and name not in LEFT_OUT
    ]


def require_part(choice: ModelChoice, part: str) -> None:
    """Raise, in the course's words, when a local folder lacks the part ``part``."""
    folder = Path(choice.model).expanduser()
    if choice.is_local and not (folder / part).is_dir():
        role = PART_ROLES.get(part, f"the part {part!r}")
        present = (
            ", ".join(sorted(path.name for path in folder.iterdir() if path.is_dir()))
            or "none"
        )
        raise FileNotFoundError(
            f"{_as_set_by(choice)} has no {part}/ folder: {role}, is missing (its parts: {present}). Copy the "
            f"whole pipeline folder, or unset SD_BOOK_MODEL to use tiny-shapes-sd."
        )


def require_hub(choice: ModelChoice, repo: str, filename: str) -> None:
    """Fail fast, with what to do, when a hub model is needed, not cached, and the hub does not answer."""
    if isinstance(try_to_load_from_cache(repo, filename), str):
        return  # in the local cache: from_pretrained needs no network
    if not (hub := hub_reachable()):
        raise OSError(
            f"{_as_set_by(choice)} is taken as a hub id and needs {repo} from the model hub, but {hub.detail}, "
            f"and it is not in the local cache. To run offline with tiny-shapes-sd instead, unset SD_BOOK_MODEL "
            f'on a CPU, or set SD_BOOK_MODEL="{TINY_MODEL_DIR}".'
        )


def checked_from_pretrained(
    model_class: type, source: str | Path, dtype: torch.dtype, **kwargs: Any
) -> Any:
    """``model_class.from_pretrained`` that raises if any weight was left unloaded or the dtype is not ``dtype``.

    Older diffusers (< 0.40) ignore ``dtype=`` and older transformers (< 5.6) read other key names: both only log a
    warning and hand back a model that runs, with random weights or in float32.
    """
    model, info = model_class.from_pretrained(
        source, dtype=dtype, use_safetensors=True, output_loading_info=True, **kwargs
    )
    where = f"{source}/{kwargs.get('subfolder', '')}".rstrip("/")
    problems = {
        kind: sorted(map(str, info.get(kind) or ()))
        for kind in ("missing_keys", "unexpected_keys", "mismatched_keys")
    }
    if any(problems.values()):
        listed = "; ".join(
            f"{kind.replace('_', ' ')}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
            f" ({len(keys)})"
            for kind, keys in problems.items()
            if keys
        )
        raise RuntimeError(
            f"{model_class.__name__} from {where} does not match its checkpoint ({listed}): those weights would "
            "stay random. Check that the folder is intact and that diffusers >= 0.40 and transformers >= 5.6 are "
            "installed (`pip install -U sd-under-the-hood`)."
        )
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if dtypes != {dtype}:
        raise RuntimeError(
            f"{model_class.__name__} from {where} loaded in {sorted(map(str, dtypes))}, not the {dtype} asked for: "
            "diffusers >= 0.40 and transformers >= 5.6 honour dtype= (`pip install -U sd-under-the-hood`)."
        )
    return model


def hub_variant(choice: ModelChoice) -> dict[str, str]:
    """``variant="fp16"`` for a hub model in float16: half the download. Never for a folder, which has one copy."""
    return (
        {"variant": "fp16"}
        if not choice.is_local and choice.dtype == torch.float16
        else {}
    )


def load_pipeline(
    pipeline_class: type[DiffusionPipeline] = StableDiffusionPipeline,
    choice: ModelChoice | None = None,
    **kwargs: Any,
) -> DiffusionPipeline:
    """The chosen model as ``pipeline_class``, on its device and dtype, without the safety checker.

    The parts with weights load one by one through ``load_component``, which checks them; parts passed in
    ``kwargs`` are used as they are. The safety checker (and the feature extractor that feeds it) is a second,
    1.2 GB CLIP model that blacks out pictures it flags; the course leaves it out, as ``safety_checker=None`` says.
    """
    choice = choice or resolve_model()
    if choice.is_local:
        check_pipeline_folder(choice)
    else:
        require_hub(choice, choice.model, "model_index.json")
    index = DiffusionPipeline.load_config(
        choice.model, local_files_only=choice.is_local
    )
    for part in pipeline_parts(choice):
        library, class_name = index[part]
        part_class = getattr(importlib.import_module(library), class_name)
        if part not in kwargs and issubclass(part_class, torch.nn.Module):
            kwargs[part] = load_component(part_class, part, choice)
    pipe = pipeline_class.from_pretrained(
        choice.model,
        dtype=choice.dtype,
        use_safetensors=True,
        local_files_only=choice.is_local,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        **hub_variant(choice),
        **kwargs,
    )
    return pipe.to(choice.device)


def load_component(
    component_class: type, subfolder: str, choice: ModelChoice | None = None
) -> Any:
    """One part of the pipeline (``subfolder="vae"``, ``"unet"``, ``"text_encoder"``, ``"tokenizer"``, ...)."""
    choice = choice or resolve_model()
    require_part(choice, subfolder)
    if not choice.is_local:
        require_hub(choice, choice.model, f"{subfolder}/config.json")
    kwargs: dict[str, Any] = {
        "subfolder": subfolder,
        "local_files_only": choice.is_local,
    }
    if not hasattr(component_class, "to"):  # tokenizers and schedulers have no weights
        return component_class.from_pretrained(choice.model, **kwargs)
    model = checked_from_pretrained(
        component_class, choice.model, choice.dtype, **hub_variant(choice), **kwargs
    )
    budget.track(model, choice)
    return model.to(choice.device)


def load_clip(choice: ModelChoice | None = None) -> tuple[CLIPModel, CLIPProcessor]:
    """The full CLIP (text and vision towers) that goes with the model, and its processor.

    For SD v1.5 that is ``openai/clip-vit-large-patch14``. tiny-shapes-sd stores its CLIP's text tower once, as the
    pipeline's ``text_encoder``; ``clip/`` holds the config, the vision tower and the projections. A local folder
    without ``clip/`` stops at once: it never falls back to the network.
    """
    choice = choice or resolve_model()
    if not choice.is_tiny:
        require_part(
            choice, "clip"
        )  # a local folder: raises, since only is_tiny folders have clip/
        require_hub(choice, REAL_CLIP_ID, "config.json")
        model = checked_from_pretrained(CLIPModel, REAL_CLIP_ID, choice.dtype)
        return model.to(choice.device), CLIPProcessor.from_pretrained(REAL_CLIP_ID)
    folder = Path(choice.model)
    model = CLIPModel(CLIPConfig.from_pretrained(folder / "clip"))
    model.text_model = checked_from_pretrained(
        CLIPTextModel, folder / "text_encoder", torch.float32, local_files_only=True
    )
    missing, unexpected = model.load_state_dict(
        load_file(folder / "clip" / "model.safetensors"), strict=False
    )
    if unexpected or any(not key.startswith("text_model.") for key in missing):
        raise RuntimeError(
            f"clip/ does not match its config: missing {missing}, unexpected {unexpected}"
        )
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor.from_pretrained(folder / "clip"),
        tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
    )
    return model.to(choice.device, choice.dtype).eval(), processor
