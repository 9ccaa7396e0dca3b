"""Evaluation of tiny-shapes-sd: VAE reconstruction, CLIP retrieval, and whether generated pictures show what was asked.

Generated pictures are judged by checks that share no weights with the generator: pixel statistics for the two
colours, and for the shape a small classifier trained here on the foreground masks of rendered pictures (blurred and
VAE-reconstructed ones too, since generated edges are soft). The last checks tell what the data and the schedulers
allow from what the network learned: the exact denoiser of the training latents in the UNet's place, at guidance 7.5
and 3 and at each in one half of the schedule; DDIM, which stays stable at any scale, at guidance 15; and the time of
one UNet call against that of the smallest UNet of SD's block types.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from PIL import Image, ImageFilter
from tqdm.auto import tqdm

from .. import shapes
from ..models import ModelChoice, load_clip
from .config import TinyConfig, make_unet
from .train import to_pixels

SCHEDULERS = {
    "PNDM": PNDMScheduler,
    "DDIM": DDIMScheduler,
    "LMS": LMSDiscreteScheduler,
    "Euler": EulerDiscreteScheduler,
    "Euler a": EulerAncestralDiscreteScheduler,
    "DPM-Solver++": DPMSolverMultistepScheduler,
}
PALETTE = np.array(list(shapes.COLORS.values()), dtype=np.float32)  # (8, 3)
# A guidance scale, or a pair: (scale at the noisier timesteps, from NOISY_FROM up; scale below them).
Guidance = float | tuple[float, float]
NOISY_FROM = 500


def nearest_color(rgb: np.ndarray) -> str:
    """The palette colour nearest to an RGB triple."""
    return list(shapes.COLORS)[int(np.argmin(((PALETTE - rgb) ** 2).sum(axis=1)))]


def judge_colors(picture: Image.Image) -> tuple[str, str | None, np.ndarray]:
    """(shape colour, background colour, foreground mask) read from pixels alone.

    The background is the median of the picture's border; the shape is every pixel far from it (None if none is).
    """
    pixels = np.asarray(picture, dtype=np.float32)  # (H, W, 3)
    border = np.concatenate([pixels[:3].reshape(-1, 3), pixels[-3:].reshape(-1, 3),
                             pixels[:, :3].reshape(-1, 3), pixels[:, -3:].reshape(-1, 3)])
    background = np.median(border, axis=0)
    distance = np.sqrt(((pixels - background) ** 2).sum(axis=2))  # (H, W)
    mask = np.clip(distance / 120.0, 0, 1)
    foreground = pixels[distance > 80]
    shape_color = nearest_color(np.median(foreground, axis=0)) if len(foreground) >= 20 else None
    return shape_color, nearest_color(background), mask


class ShapeClassifier(torch.nn.Module):
    """A small CNN from a foreground mask (B, 1, 64, 64) to the five shapes."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),  # (B, 16, 32, 32)
            torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),  # (B, 32, 16, 16)
            torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveMaxPool2d(4),  # (B, 64, 4, 4)
        )
        self.head = torch.nn.Linear(64 * 16, len(shapes.SHAPES))

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(masks).flatten(1))


def classifier_pictures(vae: AutoencoderKL, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of rendered pictures, a third blurred and a third passed through the VAE, with their shape labels."""
    rng = random.Random(seed)
    pictures, scenes = shapes.make_dataset(n, seed=seed)
    through_vae = reconstruct(vae, pictures[: n // 3])
    blurred = [Image.fromarray(p).filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
               for p in pictures[n // 3 : 2 * n // 3]]
    clean = [Image.fromarray(p) for p in pictures[2 * n // 3 :]]
    masks = np.stack([judge_colors(p)[2] for p in through_vae + blurred + clean])
    labels = torch.tensor([shapes.SHAPES.index(s.shape) for s in scenes])
    return torch.from_numpy(masks).float().unsqueeze(1), labels


@torch.no_grad()
def reconstruct(vae: AutoencoderKL, pictures: np.ndarray) -> list[Image.Image]:
    """Pictures through the VAE and back (latent mean, no sampling)."""
    decoded = vae.decode(vae.encode(to_pixels(pictures)).latent_dist.mode()).sample
    array = ((decoded.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(a) for a in array]


def train_shape_classifier(vae: AutoencoderKL, steps: int = 600) -> tuple[ShapeClassifier, float]:
    """Train the shape judge; returns it and its accuracy on fresh pictures of the same three kinds."""
    torch.manual_seed(0)
    masks, labels = classifier_pictures(vae, 3000, seed=100)
    classifier = ShapeClassifier()
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=2e-3)
    for _ in tqdm(range(steps), desc="training the shape judge", mininterval=5):
        index = torch.randint(0, len(labels), (64,))
        loss = F.cross_entropy(classifier(masks[index]), labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test_masks, test_labels = classifier_pictures(vae, 600, seed=200)
    with torch.no_grad():
        accuracy = (classifier(test_masks).argmax(1) == test_labels).float().mean().item()
    return classifier.eval(), accuracy


@torch.no_grad()
def vae_psnr_db(vae: AutoencoderKL, n: int = 256) -> float:
    """Mean PSNR of held-out pictures through the VAE."""
    pictures, _ = shapes.make_dataset(n, seed=300, split="heldout")
    restored = np.stack([np.asarray(p) for p in reconstruct(vae, pictures)]).astype(np.float64)
    mse = ((restored - pictures.astype(np.float64)) ** 2).reshape(n, -1).mean(axis=1)
    return float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))


def near_misses(scene: shapes.Scene, rng: random.Random) -> list[shapes.Scene]:
    """Seven scenes that each differ from ``scene`` in one attribute: colour, shape or background."""
    colors = [c for c in shapes.COLORS if c not in (scene.color, scene.background)]
    backgrounds = [c for c in shapes.COLORS if c not in (scene.color, scene.background)]
    other_shapes = [s for s in shapes.SHAPES if s != scene.shape]
    changes = ([("color", c) for c in rng.sample(colors, 2)] + [("shape", s) for s in rng.sample(other_shapes, 3)]
               + [("background", b) for b in rng.sample(backgrounds, 2)])
    return [shapes.with_attribute(scene, attribute, value) for attribute, value in changes]


@torch.no_grad()
def clip_top1(choice: ModelChoice, n: int = 200, split: str = "train") -> float:
    """How often CLIP ranks a picture's own caption first among it and its seven near misses."""
    model, processor = load_clip(choice)
    rng = random.Random(400)
    hits = 0
    for _ in range(n):
        scene = shapes.random_scene(rng, split)
        captions = [shapes.caption(s) for s in [scene, *near_misses(scene, rng)]]
        inputs = processor(text=captions, images=shapes.render(scene, seed=rng.randrange(2**31)),
                           return_tensors="pt", padding=True)
        logits = model(**inputs).logits_per_image[0]  # (8,): a tie counts as a miss
        hits += int(logits[0] > logits[1:].max())
    return hits / n


def generation_prompts(n: int) -> list[shapes.Scene]:
    """``n`` scenes, half of them combinations never seen in training."""
    rng = random.Random(500)
    return [shapes.random_scene(rng, "heldout" if i % 2 else "train") for i in range(n)]


@torch.no_grad()
def generate_all(pipe: StableDiffusionPipeline, scenes: list[shapes.Scene], batch: int = 16,
                 guidance_scale: float = 7.5) -> list[Image.Image]:
    """One picture per scene from its plain caption: 25 steps, guidance 7.5 unless told, a fixed seed per prompt."""
    pictures = []
    for start in range(0, len(scenes), batch):
        part = scenes[start : start + batch]
        generators = [torch.Generator().manual_seed(start + i) for i in range(len(part))]
        pictures += pipe([shapes.caption(s) for s in part], num_inference_steps=25, guidance_scale=guidance_scale,
                         generator=generators).images
    return pictures


def generation_accuracy(pictures: list[Image.Image], scenes: list[shapes.Scene],
                        classifier: ShapeClassifier) -> dict[str, float]:
    """Fractions of pictures whose shape colour, background colour and shape are the asked ones."""
    judged = [judge_colors(p) for p in pictures]
    masks = torch.from_numpy(np.stack([mask for _, _, mask in judged])).float().unsqueeze(1)
    with torch.no_grad():
        predicted = [shapes.SHAPES[i] for i in classifier(masks).argmax(1).tolist()]
    n = len(scenes)
    return {
        "gen_color_acc": sum(j[0] == s.color for j, s in zip(judged, scenes)) / n,
        "gen_bg_acc": sum(j[1] == s.background for j, s in zip(judged, scenes)) / n,
        "gen_shape_acc": sum(p == s.shape for p, s in zip(predicted, scenes)) / n,
    }


def exact_denoise(noisy: torch.Tensor, alpha_prod_t: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """The best possible prediction of the clean latents (B, D) when the data is exactly ``data`` (N, D)."""
    squared_distances = ((noisy[:, None] - alpha_prod_t.sqrt() * data[None]) ** 2).sum(-1)  # (B, N)
    return torch.softmax(-squared_distances / (2 * (1 - alpha_prod_t)), dim=1) @ data


def guidance_label(guidance: Guidance) -> str:
    """``guidance 7.5``, or ``guidance 3 from t=500 up, 7.5 below`` for a pair."""
    if isinstance(guidance, tuple):
        return f"guidance {guidance[0]:g} from t={NOISY_FROM} up, {guidance[1]:g} below"
    return f"guidance {guidance:g}"


def guidance_at(guidance: Guidance, timestep: int) -> float:
    """The scale that ``guidance`` gives at one timestep."""
    if isinstance(guidance, tuple):
        return guidance[0] if timestep >= NOISY_FROM else guidance[1]
    return guidance


@torch.no_grad()
def exact_denoiser_landings(vae: AutoencoderKL, scheduler_config: dict, guidance_scales: tuple[Guidance, ...],
                            n_pictures: int = 6000, n_prompts: int = 24) -> dict[str, dict[str, float]]:
    """For each guidance, the share of prompts each scheduler lands on their own training latents in 25 steps with a
    perfect denoiser.

    The "model" is the exact denoiser of ``n_pictures`` training latents (all of them unconditionally, those of the
    prompt's scene conditionally), so a failure here is the data's and the scheduler's, not a network's. The latents
    are encoded once for all the scales. A pair as guidance tells which half of the schedule a scale harms.
    """
    pictures, scenes = shapes.make_dataset(n_pictures, seed=600)
    data = torch.cat([vae.encode(to_pixels(pictures[i : i + 500])).latent_dist.mean
                      for i in range(0, n_pictures, 500)]).flatten(1) * vae.config.scaling_factor  # (N, 4*h*w)
    prompts = scenes[:n_prompts]
    own = [data[[i for i, other in enumerate(scenes) if other == scene]] for scene in prompts]
    landed = {}
    for guidance in guidance_scales:
        row = landed[guidance_label(guidance)] = {}
        for name in ("PNDM", "DDIM", "LMS"):
            scheduler = SCHEDULERS[name].from_config(scheduler_config)
            scheduler.set_timesteps(25)
            latents = torch.randn(n_prompts, data.shape[1], generator=torch.Generator().manual_seed(0))
            latents = latents * scheduler.init_noise_sigma
            for t in scheduler.timesteps:
                noisy = scheduler.scale_model_input(latents, t)
                alpha_prod_t = scheduler.alphas_cumprod[int(t)]
                uncond = exact_denoise(noisy, alpha_prod_t, data)
                text = torch.cat([exact_denoise(noisy[i : i + 1], alpha_prod_t, own[i]) for i in range(n_prompts)])
                pred_original_sample = uncond + guidance_at(guidance, int(t)) * (text - uncond)
                noise_pred = (noisy - alpha_prod_t.sqrt() * pred_original_sample) / (1 - alpha_prod_t).sqrt()
                latents = scheduler.step(noise_pred, t, latents).prev_sample
            distances = [torch.cdist(latents[i : i + 1], own[i]).min().item() for i in range(n_prompts)]
            row[name] = sum(d < 2.0 for d in distances) / n_prompts
    return landed


def median_seconds(call: Callable[[], object], runs: int, warmups: int) -> float:
    """Median wall time of ``call()`` over ``runs`` runs, after ``warmups`` untimed ones."""
    for _ in range(warmups):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def seconds_per_image(pipe: StableDiffusionPipeline, runs: int = 5) -> float:
    """Median wall time of one picture with the default scheduler: 25 steps, guidance 7.5."""
    pipe.scheduler = PNDMScheduler.from_config(pipe.scheduler.config)
    return median_seconds(lambda: pipe("a red circle on a blue background", num_inference_steps=25), runs, warmups=1)


@torch.no_grad()
def unet_ms_per_call(unet: UNet2DConditionModel, runs: int = 40) -> float:
    """Median milliseconds of one guided UNet call: a batch of two 8x8 latents (empty caption and caption)."""
    latents = torch.randn(2, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
    text_embeddings = torch.randn(2, 77, unet.config.cross_attention_dim)
    return median_seconds(lambda: unet(latents, 500, encoder_hidden_states=text_embeddings), runs, warmups=3) * 1000


def evaluate(model_dir: Path, n_prompts: int = 64) -> dict[str, object]:
    """Every figure of the model card, as one dict; the three accuracies are the worst over the schedulers."""
    choice = ModelChoice(str(model_dir), "cpu", torch.float32, "evaluation")
    pipe = StableDiffusionPipeline.from_pretrained(model_dir, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    classifier, classifier_accuracy = train_shape_classifier(pipe.vae)
    high, low = TinyConfig.guidance_scale, TinyConfig.effective_guidance
    exact = exact_denoiser_landings(pipe.vae, pipe.scheduler.config, (high, low, (high, low), (low, high)))
    scenes = generation_prompts(n_prompts)
    per_scheduler = {}
    for name, scheduler_class in tqdm(SCHEDULERS.items(), desc="schedulers"):
        pipe.scheduler = scheduler_class.from_config(pipe.scheduler.config)
        per_scheduler[name] = generation_accuracy(generate_all(pipe, scenes), scenes, classifier)
    worst = {key: min(row[key] for row in per_scheduler.values()) for key in next(iter(per_scheduler.values()))}
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    ddim_guidance_15 = generation_accuracy(generate_all(pipe, scenes, guidance_scale=15.0), scenes, classifier)
    smallest_unet = make_unet(replace(TinyConfig(), unet_channels=(32, 32))).eval()
    return {
        "vae_psnr_db": round(vae_psnr_db(pipe.vae), 2),
        "clip_top1": clip_top1(choice),
        "clip_top1_heldout": clip_top1(choice, split="heldout"),
        **worst,
        "seconds_per_image": round(seconds_per_image(pipe), 3),
        "per_scheduler": per_scheduler,
        "ddim_guidance_15": ddim_guidance_15,
        "unet_ms_per_call": round(unet_ms_per_call(pipe.unet), 1),
        "smallest_unet_ms_per_call": round(unet_ms_per_call(smallest_unet), 1),
        "shape_judge_acc": round(classifier_accuracy, 3),
        "exact_denoiser_landed": exact,
        "prompts": n_prompts,
    }
