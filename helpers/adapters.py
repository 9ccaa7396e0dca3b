"""Teaching a trained model a new word cheaply: textual inversion (one new embedding) and LoRA (low-rank updates).

Chapter 10 builds both on tiny-shapes-sd with diffusers' and peft's own classes. This module holds what the chapter
and its tests share: the concept's pictures, the training loop both methods use, the hand-written LoRA layer that
the chapter proves equal to peft's, and the sizes the comparison reports.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from diffusers import DDPMScheduler, StableDiffusionPipeline
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTokenizer

from . import shapes
from .captions import caption_embeddings
from .models import ModelChoice
from .tiny.config import TinyConfig
from .tiny.train import CaptionLoss, encode_dataset, sample_batch, train_step

LORA_TARGETS = (
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
)  # every attention projection, self- and cross-attention


def concept_scenes(shape: str, color: str, n: int, seed: int) -> list[shapes.Scene]:
    """``n`` scenes of a ``color`` ``shape`` on random backgrounds, neither its colour nor white (on which a pale
    shape hardly shows); size, place, shade and light are left to the renderer."""
    rng = random.Random(seed)
    backgrounds = [name for name in shapes.COLORS if name not in (color, "white")]
    return [shapes.Scene(shape, color, rng.choice(backgrounds)) for _ in range(n)]


def render_scenes(
    scenes: Sequence[shapes.Scene], seed: int, size: int = shapes.IMAGE_SIZE
) -> np.ndarray:
    """The scenes drawn as uint8 pictures (N, size, size, 3), each with its own seed."""
    return np.stack(
        [
            np.asarray(shapes.render(scene, size=size, seed=seed + i))
            for i, scene in enumerate(scenes)
        ]
    )


class ConceptData:
    """The VAE's latent distributions of some pictures and their scenes, giving batches of captions in which
    ``rename`` swaps words (``{"heart": "<heart>"}`` says the new token where the caption said "heart")."""

    def __init__(
        self,
        vae: torch.nn.Module,
        scenes: Sequence[shapes.Scene],
        seed: int,
        size: int,
        rename: dict[str, str] | None = None,
    ):
        self.scenes = list(scenes)
        self.latent_dists = encode_dataset(
            vae, render_scenes(self.scenes, seed, size), batch=8
        )  # (N, 2, 4, h, w)
        self.scaling_factor = vae.config.scaling_factor
        self.rename = rename or {}

    def caption(self, text: str) -> str:
        """``text`` with ``rename``'s words swapped."""
        for old, new in self.rename.items():
            text = text.replace(old, new)
        return text

    def batch(self, size: int, rng: random.Random) -> tuple[torch.Tensor, list[str]]:
        """Latents (B, 4, h, w) drawn from random pictures, and their captions, renamed."""
        latents, captions = sample_batch(
            self.latent_dists, self.scenes, size, self.scaling_factor, 0.0, rng
        )
        return latents, [self.caption(text) for text in captions]


def add_token(
    tokenizer: CLIPTokenizer, text_encoder: CLIPTextModel, token: str, initializer: str
) -> int:
    """Add ``token`` to the vocabulary, and a row for it to the embedding table: a copy
    of ``initializer``'s row."""
    if tokenizer.add_tokens(token) != 1:
        raise ValueError(f"{token!r} is already a token")
    text_encoder.resize_token_embeddings(len(tokenizer))
    (initializer_id,) = tokenizer.encode(initializer, add_special_tokens=False)
    token_id = tokenizer.convert_tokens_to_ids(token)
    table = text_encoder.get_input_embeddings().weight  # (vocabulary, d)
    with torch.no_grad():
        table[token_id] = table[initializer_id]
    return token_id


def train_only_rows(
    table: torch.nn.Parameter, rows: Sequence[int]
) -> torch.utils.hooks.RemovableHandle:
    """Let gradients reach only ``rows`` of an embedding table: every other row's
    gradient is zero, so with no weight decay Adam leaves those rows as they were.
    """
    mask = torch.zeros(len(table), 1, dtype=table.dtype, device=table.device)
    mask[list(rows)] = 1
    table.requires_grad_(True)
    return table.register_hook(lambda grad: grad * mask)


def guidance_calibration(choice: ModelChoice) -> float:
    """How far a captioned prediction was trained to move from the empty caption's toward the noise: tiny-shapes-sd's
    last stage trained it to ``effective_guidance / guidance_scale`` of the way (its model card says why), SD v1.5
    all of it (1, the plain diffusion loss)."""
    return TinyConfig().calibration_ratio if choice.is_tiny else 1.0


def fit(
    pipe: StableDiffusionPipeline,
    data: ConceptData,
    parameters: list[torch.nn.Parameter],
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    calibration: float = 1.0,
    grad_clip: float = 1.0,
) -> tuple[list[float], list[float]]:
    """Train ``parameters`` (and nothing else) on ``data``'s batches; returns the loss
    and the seconds of every step.

    The loss is the one the model was last trained with (``CaptionLoss``): chapter 7's
    diffusion loss where ``calibration`` is 1, else the calibrated one with that ratio,
    so that new captions keep the guidance strength of the old ones.
    """
    rng = random.Random(seed)
    torch.manual_seed(seed)
    trained = torch.nn.ParameterList(
        parameters
    )  # train_step clips the norm of these parameters' gradients
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.0)
    with torch.no_grad():
        empty = caption_embeddings(pipe.text_encoder, pipe.tokenizer, [""])
    caption_loss = CaptionLoss(
        DDPMScheduler.from_config(pipe.scheduler.config), empty, calibration
    )
    losses, seconds = [], []
    for _ in range(steps):
        start = time.perf_counter()
        latents, captions = data.batch(batch_size, rng)  # (B, 4, h, w), B captions
        text_embeddings = caption_embeddings(
            pipe.text_encoder, pipe.tokenizer, captions
        )  # (B, 77, d)
        loss = caption_loss(
            pipe.unet, latents.to(pipe.unet.device), captions, text_embeddings
        )
        train_step(trained, optimizer, loss, grad_clip)
        losses.append(loss.item())
        seconds.append(time.perf_counter() - start)
    return losses, seconds


def save_embedding(path: Path, token: str, embedding: torch.Tensor) -> Path:
    """Save one learned embedding (d,) as ``{token: (1, d)}`` in safetensors: the file diffusers' training script
    writes and ``load_textual_inversion`` reads (the token comes from the key)."""
    save_file({token: embedding.detach().reshape(1, -1).contiguous().cpu()}, path)
    return path


def lora_forward(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    lora_a: torch.Tensor,
    lora_b: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """What a LoRA linear layer computes: x W^T + b + scale * x A^T B^T, with A (r, in)
    and B (out, r).

    The same as a linear layer with weight W + scale * B A, but B A (out, in) is never
    formed while training.
    """
    out = x @ weight.T + (bias if bias is not None else 0)
    return out + scale * (x @ lora_a.T) @ lora_b.T


def count_parameters(parameters: Sequence[torch.nn.Parameter]) -> int:
    """How many numbers these parameters hold."""
    return sum(p.numel() for p in parameters)


def lora_parameters(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The LoRA matrices (A and B of every adapted layer) that peft added to ``module``."""
    return [p for name, p in module.named_parameters() if "lora_" in name]
