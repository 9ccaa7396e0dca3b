"""Training of tiny-shapes-sd: the VAE and CLIP side by side, then the UNet on the VAE's latents and CLIP's text.

Each part is one short loop around one loss function. ``diffusion_loss`` is the latent diffusion objective that
chapter 1 writes out and chapter 7 trains with.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm
from transformers import CLIPTextModel, CLIPTokenizer

from .. import shapes
from ..captions import caption_embeddings, tokenize
from ..sd15 import sd15_config
from .config import LoopConfig, TinyConfig, make_clip, make_unet, make_vae

# OpenAI CLIP's pixel normalisation, which CLIPImageProcessor applies too.
CLIP_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
CLIP_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


def to_pixels(pictures: np.ndarray) -> torch.Tensor:
    """uint8 pictures (B, H, W, 3) -> float tensor (B, 3, H, W) in [-1, 1], the VAE's input range."""
    return torch.from_numpy(pictures).permute(0, 3, 1, 2).float() / 127.5 - 1


def foreground_mask(pixels: torch.Tensor) -> torch.Tensor:
    """1 where a pixel differs from the top-left pixel's colour (the background), else 0: (B, 1, H, W)."""
    background = pixels[:, :, :1, :1]
    return ((pixels - background).abs().amax(dim=1, keepdim=True) > 0.1).float()


def learning_rate(step: int, steps: int, base: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the base rate."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss: torch.Tensor,
    grad_clip: float,
    ema: EMAModel | None = None,
) -> None:
    """One optimiser step on ``loss``: gradients, clipped to norm ``grad_clip``,
    then the update, then the EMA."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    if ema is not None:
        ema.step(model.parameters())


def run_loop(
    name: str,
    model: torch.nn.Module,
    loss_fn: Callable[[], torch.Tensor],
    steps: int,
    lr: float,
    config: LoopConfig,
    ema: EMAModel | None = None,
) -> list[float]:
    """Optimise ``loss_fn`` for ``steps`` steps with AdamW; checkpoints to ``workdir/name.pt`` and resumes from it."""
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=lr, weight_decay=config.weight_decay
    )
    path = config.workdir / f"{name}.pt"
    start, losses = 0, []
    if path.exists():
        state = torch.load(path, weights_only=False, map_location=config.device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        start, losses = state["step"], state["losses"]
    for step in tqdm(
        range(start, steps),
        desc=f"training {name}",
        initial=start,
        total=steps,
        mininterval=5,
    ):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, lr, config.warmup_steps)
        loss = loss_fn()
        train_step(model, optimizer, loss, config.grad_clip, ema)
        losses.append(loss.item())
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == steps:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step + 1,
                "losses": losses,
                "ema": ema.state_dict() if ema is not None else None,
            }
            torch.save(state, path)
    return losses


def vae_loss(
    vae: AutoencoderKL, pixels: torch.Tensor, config: TinyConfig
) -> torch.Tensor:
    """Reconstruction error, with the shape's pixels weighted up, plus a small KL term."""
    posterior = vae.encode(pixels).latent_dist  # latents (B, 4, h, w)
    reconstruction = vae.decode(posterior.sample()).sample  # (B, 3, H, W)
    weight = 1 + config.vae_shape_weight * foreground_mask(pixels)
    return (
        weight * (reconstruction - pixels) ** 2
    ).mean() + config.vae_kl_weight * posterior.kl().mean()


def train_vae(config: TinyConfig) -> list[float]:
    """Train the VAE on rendered shapes and save it to ``workdir/vae``."""
    torch.manual_seed(config.seed)
    pictures, _ = shapes.make_dataset(config.dataset_size, seed=config.seed)
    vae = make_vae(config).to(config.device)

    def loss() -> torch.Tensor:
        index = torch.randint(0, len(pictures), (config.vae_batch,))
        return vae_loss(
            vae, to_pixels(pictures[index.numpy()]).to(config.device), config
        )

    losses = run_loop("vae", vae, loss, config.vae_steps, config.vae_lr, config)
    vae.save_pretrained(config.workdir / "vae")
    return losses


def contrastive_batch(size: int, rng: random.Random) -> tuple[np.ndarray, list[str]]:
    """Pictures and captions in groups that share colours but differ in shape, so shape must be learned."""
    scenes = []
    while len(scenes) < size:
        scene = shapes.random_scene(rng)
        for shape in rng.sample(shapes.SHAPES, 4):
            if (scene.color, shape, scene.background) not in shapes.HELD_OUT:
                scenes.append(shapes.with_attribute(scene, "shape", shape))
    scenes = scenes[:size]
    pictures = np.stack(
        [np.asarray(shapes.render(s, seed=rng.randrange(2**31))) for s in scenes]
    )
    return pictures, [shapes.caption(s, rng) for s in scenes]


def clip_pixel_values(pixels: torch.Tensor) -> torch.Tensor:
    """VAE-range pixels (B, 3, H, W) in [-1, 1] -> CLIP's normalised ``pixel_values``."""
    return ((pixels + 1) / 2 - CLIP_MEAN.to(pixels.device)) / CLIP_STD.to(pixels.device)


def train_clip(config: TinyConfig, tokenizer_dir: Path) -> list[float]:
    """Train CLIP contrastively on (picture, caption) pairs and save it to ``workdir/clip``."""
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    clip = make_clip(config).to(config.device)

    def loss() -> torch.Tensor:
        pictures, captions = contrastive_batch(config.clip_batch, rng)
        pixel_values = clip_pixel_values(to_pixels(pictures).to(config.device))
        return clip(
            input_ids=tokenize(tokenizer, captions, config.device),
            pixel_values=pixel_values,
            return_loss=True,
        ).loss

    losses = run_loop("clip", clip, loss, config.clip_steps, config.clip_lr, config)
    clip.save_pretrained(config.workdir / "clip")
    return losses


def add_training_noise(
    noise_scheduler: DDPMScheduler, latents: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Noise each latent at a random timestep of its own: (noisy latents, noise,
    timesteps)."""
    noise = torch.randn_like(latents)  # (B, 4, h, w)
    timesteps = torch.randint(
        0,
        noise_scheduler.config.num_train_timesteps,
        (len(latents),),
        device=latents.device,
    )
    return noise_scheduler.add_noise(latents, noise, timesteps), noise, timesteps


def diffusion_loss(
    unet: UNet2DConditionModel,
    noise_scheduler: DDPMScheduler,
    latents: torch.Tensor,
    text_embeddings: torch.Tensor,
) -> torch.Tensor:
    """The latent diffusion loss: noise the latents at a random timestep, predict
    that noise, take the MSE."""
    noisy_latents, noise, timesteps = add_training_noise(noise_scheduler, latents)
    noise_pred = unet(
        noisy_latents, timesteps, encoder_hidden_states=text_embeddings
    ).sample
    return F.mse_loss(noise_pred, noise)


def calibrated_guidance_loss(
    unet: UNet2DConditionModel,
    noise_scheduler: DDPMScheduler,
    latents: torch.Tensor,
    text_embeddings: torch.Tensor,
    empty_embedding: torch.Tensor,
    captioned: torch.Tensor,
    ratio: float,
) -> torch.Tensor:
    """``diffusion_loss`` whose captioned rows aim only ``ratio`` of the way from the empty caption's prediction to
    the noise.

    The best captioned prediction is then ``uncond + ratio * (true - uncond)``, so guidance scale ``w`` gives
    ``uncond + w * ratio * (true - uncond)``: what guidance ``w * ratio`` gives for a plainly trained UNet.
    """
    noisy_latents, noise, timesteps = add_training_noise(noise_scheduler, latents)
    with torch.no_grad():
        empty = empty_embedding.expand(len(latents), -1, -1)  # (B, 77, d)
        uncond = unet(noisy_latents, timesteps, encoder_hidden_states=empty).sample
    target = torch.where(
        captioned.view(-1, 1, 1, 1), uncond + ratio * (noise - uncond), noise
    )  # (B, 4, h, w)
    noise_pred = unet(
        noisy_latents, timesteps, encoder_hidden_states=text_embeddings
    ).sample
    return F.mse_loss(noise_pred, target)


@dataclass
class CaptionLoss:
    """The loss of a captioned batch that a trained model keeps learning with: ``diffusion_loss`` where
    ``calibration`` is 1, else ``calibrated_guidance_loss`` with that ratio for the rows with a caption. The fixed
    parts are set once; each step gives the model and its batch."""

    noise_scheduler: DDPMScheduler
    # (1, 77, d); only the calibrated loss reads it
    empty_embedding: torch.Tensor | None
    calibration: float = 1.0

    def __call__(
        self,
        unet: torch.nn.Module,
        latents: torch.Tensor,
        captions: list[str],
        text_embeddings: torch.Tensor,
    ) -> torch.Tensor:
        """The loss of ``latents`` (B, 4, h, w) under their ``captions`` and the captions' embeddings (B, 77, d)."""
        if self.calibration == 1.0:
            return diffusion_loss(unet, self.noise_scheduler, latents, text_embeddings)
        captioned = torch.tensor(
            [text != "" for text in captions], device=latents.device
        )
        return calibrated_guidance_loss(
            unet,
            self.noise_scheduler,
            latents,
            text_embeddings,
            self.empty_embedding,
            captioned,
            self.calibration,
        )


@torch.no_grad()
def encode_dataset(
    vae: AutoencoderKL, pictures: np.ndarray, batch: int = 256
) -> torch.Tensor:
    """The VAE's latent distribution of every picture, as mean and std stacked: (N, 2, 4, h, w)."""
    device = vae.device
    parts = []
    for start in range(0, len(pictures), batch):
        dist = vae.encode(
            to_pixels(pictures[start : start + batch]).to(device)
        ).latent_dist
        parts.append(torch.stack([dist.mean, dist.std], dim=1))
    return torch.cat(parts)


def sample_batch(
    latent_dists: torch.Tensor,
    scenes: list[shapes.Scene],
    batch_size: int,
    scaling_factor: float,
    uncond_prob: float,
    rng: random.Random,
) -> tuple[torch.Tensor, list[str]]:
    """A training batch: latents drawn from the distributions of ``batch_size``
    random pictures and scaled, and their captions, each one left empty with
    probability ``uncond_prob`` (caption dropout)."""
    index = torch.randint(0, len(scenes), (batch_size,))
    # (B, 4, h, w) each
    mean, std = latent_dists[index.to(latent_dists.device)].unbind(dim=1)
    latents = (mean + std * torch.randn_like(std)) * scaling_factor
    captions = [
        "" if rng.random() < uncond_prob else shapes.caption(scenes[i], rng)
        for i in index.tolist()
    ]
    return latents, captions


@torch.no_grad()
def embed_captions(
    text_encoder: CLIPTextModel, tokenizer: CLIPTokenizer, captions: list[str]
) -> torch.Tensor:
    """Captions -> the frozen text encoder's ``last_hidden_state`` (B, 77, d), without gradients."""
    return caption_embeddings(text_encoder, tokenizer, captions)


def latent_dataset(
    config: TinyConfig, vae: AutoencoderKL
) -> tuple[torch.Tensor, list[shapes.Scene]]:
    """The UNet's training set: ``unet_dataset_size`` renders encoded once to the VAE's latent distributions
    (N, 2, 4, h, w), and their scenes."""
    pictures, scenes = shapes.make_dataset(
        config.unet_dataset_size, seed=config.seed + 1
    )
    return encode_dataset(vae, pictures), scenes


def train_unet(
    config: TinyConfig,
    vae: AutoencoderKL,
    text_encoder: CLIPTextModel,
    tokenizer: CLIPTokenizer,
    unet: UNet2DConditionModel | None = None,
    steps: int | None = None,
    name: str = "unet",
    calibrate: bool = False,
    dataset: tuple[torch.Tensor, list[shapes.Scene]] | None = None,
) -> tuple[UNet2DConditionModel, list[float]]:
    """Train a new UNet (or go on training ``unet``) on scaled latents of rendered shapes (``dataset``, or a fresh
    ``latent_dataset``), with ``uncond_prob`` empty captions; returns it with its EMA weights applied. With
    ``calibrate`` the loss is ``calibrated_guidance_loss`` for ``config.guidance_scale``, else ``diffusion_loss``."""
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    latent_dists, scenes = dataset or latent_dataset(config, vae)
    unet = (unet or make_unet(config)).to(config.device)
    ema = EMAModel(unet.parameters(), decay=config.ema_decay)
    caption_loss = CaptionLoss(
        DDPMScheduler.from_config(sd15_config("scheduler")),
        # what the calibrated loss's unconditional prediction reads; plain training embeds only its batches
        embed_captions(text_encoder, tokenizer, [""]) if calibrate else None,
        config.calibration_ratio if calibrate else 1.0,
    )

    def loss() -> torch.Tensor:
        latents, captions = sample_batch(
            latent_dists,
            scenes,
            config.unet_batch,
            vae.config.scaling_factor,
            config.uncond_prob,
            rng,
        )
        text_embeddings = embed_captions(text_encoder, tokenizer, captions)
        return caption_loss(unet, latents, captions, text_embeddings)

    losses = run_loop(
        name, unet, loss, steps or config.unet_steps, config.unet_lr, config, ema=ema
    )
    ema.copy_to(unet.parameters())
    return unet, losses


@torch.no_grad()
def latent_scaling_factor(vae: AutoencoderKL, config: TinyConfig) -> float:
    """1 / std of latents over held-out pictures, so scaled latents have unit variance (SD's is 0.18215)."""
    pictures, _ = shapes.make_dataset(1024, seed=config.seed + 2, split="heldout")
    return (
        1.0
        / vae.encode(to_pixels(pictures).to(vae.device))
        .latent_dist.sample()
        .std()
        .item()
    )


def _train_in_subprocess(
    part: str, config: TinyConfig, tokenizer_dir: Path
) -> list[float]:
    """One thread for each of the two small models trained side by side: it beats two threads for each in turn."""
    torch.set_num_threads(1)
    return train_vae(config) if part == "vae" else train_clip(config, tokenizer_dir)


def train_vae_and_clip(
    config: TinyConfig, tokenizer_dir: Path
) -> dict[str, list[float]]:
    """Train the VAE and CLIP at the same time in two processes; returns each one's losses."""
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        futures = {
            part: pool.submit(_train_in_subprocess, part, config, tokenizer_dir)
            for part in ("vae", "clip")
        }
        return {part: future.result() for part, future in futures.items()}
