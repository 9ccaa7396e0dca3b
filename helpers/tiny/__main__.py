"""``python -m helpers.tiny train [--quick]``, ``python -m helpers.tiny controlnet [--quick]`` and
``python -m helpers.tiny evaluate``."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

from diffusers import AutoencoderKL
from transformers import CLIPModel, CLIPTokenizer

from ..cli import add_training_folders
from ..models import TINY_CONTROLNET_DIR
from .config import SHIPPED_DIR, TinyConfig
from .controlnet import add_controlnet_arguments, run_controlnet
from .export import check_loads_correctly, folder_size_mb, save_pipeline
from .tokenizer import build_tokenizer
from .train import (
    latent_dataset,
    latent_scaling_factor,
    train_unet,
    train_vae_and_clip,
)
from .train_judge import train_shape_classifier


def tokenizer_files(config: TinyConfig) -> Path:
    """SD v1.5's tokenizer files in the work folder: copied from the shipped model, or built where it has none."""
    folder = config.workdir / "tokenizer"
    if not folder.exists():
        shipped = SHIPPED_DIR / "tokenizer"
        if (shipped / "vocab.json").exists():
            shutil.copytree(shipped, folder)
        else:
            build_tokenizer(folder)
    return folder


def first_and_last(losses: list[float]) -> list[float]:
    """The mean loss over the first and over the last fifth of a run: single batches are too noisy to compare."""
    k = max(1, len(losses) // 5)
    return [round(sum(losses[:k]) / k, 4), round(sum(losses[-k:]) / k, 4)]


def train(config: TinyConfig) -> dict[str, list[float]]:
    """Train every part in order and write the pipeline folder; returns each part's losses."""
    start = time.time()
    config.workdir.mkdir(parents=True, exist_ok=True)
    tokenizer_dir = tokenizer_files(config)
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    losses = train_vae_and_clip(config, tokenizer_dir)
    vae = AutoencoderKL.from_pretrained(config.workdir / "vae").to(config.device)
    vae.register_to_config(scaling_factor=latent_scaling_factor(vae, config))
    judge_accuracy = train_shape_classifier(vae, config)
    clip = CLIPModel.from_pretrained(config.workdir / "clip").to(config.device)
    dataset = latent_dataset(
        config, vae
    )  # rendered and encoded once, for both UNet stages
    unet, losses["unet"] = train_unet(
        config, vae, clip.text_model, tokenizer, dataset=dataset
    )
    calibration = replace(
        config,
        uncond_prob=config.calibration_uncond_prob,
        unet_lr=config.calibration_lr,
    )
    unet, losses["unet_calibrated"] = train_unet(
        calibration,
        vae,
        clip.text_model,
        tokenizer,
        unet=unet,
        steps=config.calibration_steps,
        name="unet_calibrated",
        calibrate=True,
        dataset=dataset,
    )
    save_pipeline(vae, clip, unet, tokenizer_dir, config.out_dir, config.image_size)
    check_loads_correctly(config.out_dir)
    minutes = (time.time() - start) / 60
    print(
        f"wrote {config.out_dir} ({folder_size_mb(config.out_dir):.1f} MB) in {minutes:.1f} min, "
        f"scaling_factor {vae.config.scaling_factor:.4f}; the judge's shapes: {judge_accuracy:.1%} right"
    )
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m helpers.tiny", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    train_parser = sub.add_parser(
        "train", help="train tiny-shapes-sd from scratch (resumes from checkpoints)"
    )
    add_training_folders(
        train_parser,
        "tiny-shapes-sd-quick",
        out_help="pipeline folder to write (default: the shipped one, or "
        "the quick work folder's model/ with --quick)",
    )
    add_controlnet_arguments(
        sub.add_parser(
            "controlnet",
            help="train the ControlNet of the shipped tiny-shapes-sd "
            "(resumes from checkpoints)",
        )
    )
    evaluate_parser = sub.add_parser(
        "evaluate", help="print the model's evaluation figures as JSON"
    )
    evaluate_parser.add_argument(
        "--model", type=Path, help="pipeline folder (default: the shipped one)"
    )
    evaluate_parser.add_argument(
        "--prompts", type=int, default=64, help="number of generation prompts"
    )
    evaluate_parser.add_argument(
        "--controlnet",
        type=Path,
        help="the ControlNet trained for --model (default: the shipped one, when --model is the shipped model)",
    )
    args = parser.parse_args()
    if args.command == "train":
        config = TinyConfig().quick() if args.quick else TinyConfig()
        workdir = args.workdir or config.workdir
        config = replace(
            config,
            out_dir=args.out or config.out_dir,
            workdir=workdir,
            judge_weights=workdir / "judge.safetensors"
            if args.quick
            else config.judge_weights,
        )
        losses = train(config)
        print(
            json.dumps(
                {part: first_and_last(values) for part, values in losses.items()}
            )
        )
    elif args.command == "controlnet":
        print(json.dumps(run_controlnet(args)))
    else:
        from .evaluate import evaluate

        model = args.model or TinyConfig().out_dir
        shipped_controlnet = (
            TINY_CONTROLNET_DIR if model.resolve() == SHIPPED_DIR else None
        )
        controlnet = args.controlnet or shipped_controlnet
        print(
            json.dumps(
                evaluate(model, n_prompts=args.prompts, controlnet_dir=controlnet)
            )
        )


if __name__ == "__main__":
    main()
