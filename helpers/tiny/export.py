"""Write tiny-shapes-sd as a diffusers pipeline folder: safetensors in half precision, no tensor stored twice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    PNDMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from safetensors.torch import load_file, save_file
from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer

from ..sd15 import sd15_config


def halve_safetensors(folder: Path) -> None:
    """Store float weights as float16; the configs still say float32, so they load as float32 on a CPU."""
    for path in folder.rglob("*.safetensors"):
        tensors = {
            k: v.half() if v.is_floating_point() else v
            for k, v in load_file(path).items()
        }
        save_file(tensors, path, metadata={"format": "pt"})


def save_clip_without_text_tower(
    clip: CLIPModel, folder: Path, image_size: int
) -> None:
    """The full CLIP's config and its vision tower and projections; its text tower is the pipeline's text encoder."""
    folder.mkdir(parents=True, exist_ok=True)
    clip.config.save_pretrained(folder)
    weights = {
        k: v.contiguous()
        for k, v in clip.state_dict().items()
        if not k.startswith("text_model.")
    }
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size=image_size
    ).save_pretrained(folder)


def save_tokenizer(tokenizer_dir: Path, folder: Path) -> None:
    """SD v1.5's tokenizer files: ``vocab.json`` and ``merges.txt`` (from which transformers rebuilds the rest)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(tokenizer_dir / name, folder / name)
    config = json.loads((tokenizer_dir / "tokenizer_config.json").read_text())
    config = {
        k: v
        for k, v in config.items()
        if k not in ("is_local", "local_files_only", "backend")
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def save_pipeline(
    vae: AutoencoderKL,
    clip: CLIPModel,
    unet: UNet2DConditionModel,
    tokenizer_dir: Path,
    out_dir: Path,
    image_size: int,
) -> None:
    """Save every part where ``StableDiffusionPipeline.from_pretrained(out_dir)`` looks for it, plus ``clip/``."""
    for part in ("vae", "text_encoder", "tokenizer", "unet", "scheduler", "clip"):
        shutil.rmtree(out_dir / part, ignore_errors=True)
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=clip.text_model,
        tokenizer=CLIPTokenizer.from_pretrained(tokenizer_dir),
        unet=unet,
        scheduler=PNDMScheduler.from_config(
            {k: v for k, v in sd15_config("scheduler").items() if k != "clip_sample"}
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out_dir)
    # As in SD v1.5's own file: a DDIMScheduler built from this config must not clip latents to [-1, 1].
    scheduler_file = out_dir / "scheduler" / "scheduler_config.json"
    scheduler_file.write_text(
        json.dumps(
            {**json.loads(scheduler_file.read_text()), "clip_sample": False}, indent=2
        )
    )
    # transformers 5 saves only tokenizer.json (3.6 MB); SD ships vocab.json and merges.txt (1.5 MB) instead.
    shutil.rmtree(out_dir / "tokenizer")
    save_tokenizer(tokenizer_dir, out_dir / "tokenizer")
    save_clip_without_text_tower(clip, out_dir / "clip", image_size)
    halve_safetensors(out_dir)
    drop_local_paths(out_dir)


def drop_local_paths(folder: Path) -> None:
    """Remove ``_name_or_path`` from every config: it names the training machine's checkpoint folder."""
    for path in folder.rglob("config.json"):
        config = json.loads(path.read_text())
        if config.pop("_name_or_path", None) is not None:
            path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def folder_size_mb(folder: Path) -> float:
    """Size of every file under ``folder``, in MB."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


@torch.no_grad()
def check_loads_correctly(out_dir: Path) -> None:
    """Fail loudly if the shipped folder would load in half precision on a CPU, or without its vocabulary."""
    pipe = StableDiffusionPipeline.from_pretrained(out_dir)
    if pipe.tokenizer("a photo").input_ids != [49406, 320, 1125, 49407]:
        raise RuntimeError(f"{out_dir}/tokenizer does not give CLIP's ids")
    dtypes = {
        name: next(getattr(pipe, name).parameters()).dtype
        for name in ("vae", "text_encoder", "unet")
    }
    if set(dtypes.values()) != {torch.float32}:
        raise RuntimeError(f"{out_dir} loads as {dtypes}, expected float32 everywhere")
