"""The one config object of tiny-shapes-sd, and the models it builds: the real diffusers and transformers classes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPConfig, CLIPModel

from ..judge import JUDGE_WEIGHTS

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "tiny_shapes_sd"


def cache_folder(name: str) -> Path:
    """Where a training keeps its checkpoints: ``$SD_BOOK_CACHE`` or ``~/.cache/sd-book``, then ``name``."""
    return (
        Path(os.environ.get("SD_BOOK_CACHE", Path.home() / ".cache" / "sd-book")) / name
    )


def default_workdir(quick: bool = False) -> Path:
    """``tiny-shapes-sd`` in the cache, or ``tiny-shapes-sd-quick`` for ``--quick``, so a quick run never touches a
    full run's checkpoints."""
    return cache_folder("tiny-shapes-sd-quick" if quick else "tiny-shapes-sd")


@dataclass
class LoopConfig:
    """What the training loop (``train.run_loop``) reads, the same for every model this package trains."""

    # The optimiser: AdamW with linear warm-up, cosine decay and gradient clipping.
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    warmup_steps: int = 100
    seed: int = 0
    checkpoint_every: int = 500
    device: str = field(
        default_factory=lambda: "cuda" if torch.cuda.is_available() else "cpu"
    )
    workdir: Path = field(default_factory=default_workdir)


@dataclass
class TinyConfig(LoopConfig):
    """Every size and step count of tiny-shapes-sd (the loop's from ``LoopConfig``); ``quick()`` gives the few-steps
    version for tests."""

    image_size: int = 64
    # VAE: 4 blocks like SD's, so 64x64 pictures become 8x8x4 latents.
    vae_channels: tuple[int, ...] = (24, 48, 96, 96)
    vae_steps: int = 4000
    vae_batch: int = 16
    vae_lr: float = 1e-3
    vae_kl_weight: float = 1e-6
    # shape pixels count 5x in the loss: they are few and carry the outline
    vae_shape_weight: float = 4.0
    # CLIP: the text tower is the pipeline's text encoder; its width is the UNet's cross-attention width.
    text_width: int = 64
    text_layers: int = 3
    vision_width: int = 128
    vision_layers: int = 4
    vision_patch: int = 8
    clip_steps: int = 3000  # 1500 left CLIP at 0.56 top-1 on this world; CLIP trains beside the VAE, which takes as long
    clip_batch: int = 96
    clip_lr: float = 1e-3
    # UNet: SD's block types on an 8x8 latent, three levels (8x8, 4x4, 2x2).
    unet_channels: tuple[int, ...] = (64, 128, 128)
    unet_steps: int = 15000
    unet_batch: int = 48
    unet_lr: float = 5e-4
    uncond_prob: float = 0.1  # empty captions, as SD was trained: classifier-free guidance needs an unconditional model
    # A last UNet stage calibrates guidance (``calibrated_guidance_loss``): at SD's default scale, 7.5, the model draws
    # as a plainly trained one would at ``effective_guidance``. Two plain runs on data that leaves shade, light, size,
    # place and turn open still made the guided ODE too stiff for PNDM and LMS at 7.5 in 25 steps (the model card).
    # At 3 PNDM still slipped (0.81 colour at 7.5); at 1.5 every scheduler lost shapes; 2 kept both (the model card).
    guidance_scale: float = 7.5
    effective_guidance: float = 2.0
    calibration_steps: int = 1600
    calibration_uncond_prob: float = 0.2
    calibration_lr: float = 2e-4
    ema_decay: float = 0.999
    unet_dataset_size: int = 40000  # pictures encoded once; each step samples fresh latents from their distributions
    dataset_size: int = 20000  # pictures the VAE trains on
    # The judge's shape classifier (``helpers.judge``), trained on outlines of renders once the VAE is trained.
    judge_examples: int = 6000
    judge_steps: int = 2500
    judge_batch: int = 64
    judge_lr: float = 2e-3
    judge_weights: Path = JUDGE_WEIGHTS
    out_dir: Path = SHIPPED_DIR

    @property
    def calibration_ratio(self) -> float:
        """How far the calibrated stage trains a captioned prediction from the empty caption's toward the noise."""
        return self.effective_guidance / self.guidance_scale

    def quick(self) -> TinyConfig:
        """A few steps of each part: shows the losses fall, in about a minute on 2 cores."""
        return replace(
            self,
            vae_steps=20,
            clip_steps=20,
            unet_steps=30,
            calibration_steps=10,
            dataset_size=256,
            unet_dataset_size=256,
            checkpoint_every=10,
            vae_batch=8,
            clip_batch=32,
            unet_batch=16,
            warmup_steps=5,
            judge_examples=300,
            judge_steps=20,
            workdir=default_workdir(quick=True),
            out_dir=default_workdir(quick=True) / "model",
        )


def make_vae(config: TinyConfig) -> AutoencoderKL:
    """SD's AutoencoderKL with narrower blocks: same 4-block layout, scale factor 8, 4 latent channels."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(config.vae_channels),
        up_block_types=("UpDecoderBlock2D",) * len(config.vae_channels),
        block_out_channels=config.vae_channels,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=config.image_size,
    )


def make_clip(config: TinyConfig) -> CLIPModel:
    """A small CLIP with OpenAI's 49408-token vocabulary and SD's 77 text positions."""
    clip_config = CLIPConfig(
        text_config={
            "vocab_size": 49408,
            "hidden_size": config.text_width,
            "intermediate_size": 4 * config.text_width,
            "num_hidden_layers": config.text_layers,
            "num_attention_heads": 4,
            "max_position_embeddings": 77,
            "hidden_act": "quick_gelu",
            "bos_token_id": 49406,
            "eos_token_id": 49407,
            "pad_token_id": 49407,
        },
        vision_config={
            "image_size": config.image_size,
            "patch_size": config.vision_patch,
            "hidden_size": config.vision_width,
            "intermediate_size": 4 * config.vision_width,
            "num_hidden_layers": config.vision_layers,
            "num_attention_heads": 4,
            "hidden_act": "quick_gelu",
        },
        projection_dim=config.text_width,
    )
    return CLIPModel(clip_config)


def make_unet(config: TinyConfig) -> UNet2DConditionModel:
    """SD's UNet2DConditionModel: cross-attention down/up blocks around a plain bottom level."""
    levels = len(config.unet_channels)
    return UNet2DConditionModel(
        sample_size=config.image_size // 8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * (levels - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (levels - 1),
        block_out_channels=config.unet_channels,
        layers_per_block=1,
        cross_attention_dim=config.text_width,
        attention_head_dim=8,
        norm_num_groups=32,
    )
