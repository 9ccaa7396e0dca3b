"""Evaluation of tiny-shapes-sd: its parts, and whether what it draws shows what was asked, as SD's would.

Generated pictures are scored by ``helpers.judge``, which shares no weights with the generator. Beside prompt
following with every scheduler the course uses, it measures what a reader of the book sees: how much the seed
changes (against how much the world itself varies), how guidance acts, how few steps degrade, and what
image-to-image keeps and changes. The exact-denoiser check tells what the data and the schedulers allow from what
the network learned, and the timing says how much of a picture's time is the UNet's.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from PIL import Image
from tqdm.auto import tqdm

from .. import shapes
from ..compare import psnr
from ..judge import Judgement, judge_many
from ..models import ModelChoice, load_clip
from ..schedulers import SCHEDULERS, make_scheduler
from ..timing import median_seconds
from .controlnet import controlnet_shape_accuracy
from .train import to_pixels
from .train_judge import reconstruct

# every scheduler of chapter 5 but DDPM, whose ancestral steps need hundreds of steps
GENERATION_SCHEDULERS = tuple(name for name in SCHEDULERS if name != "DDPM")
STEPS, GUIDANCE = 25, 7.5
FLAGSHIP = "a red circle on a blue background"  # a combination held out of training


@torch.no_grad()
def vae_psnr_db(vae: AutoencoderKL, n: int = 256) -> float:
    """Mean PSNR of held-out pictures through the VAE."""
    pictures, _ = shapes.make_dataset(n, seed=300, split="heldout")
    restored = reconstruct(vae, pictures)
    return float(np.mean([psnr(p, r) for p, r in zip(pictures, restored)]))


def near_misses(scene: shapes.Scene, rng: random.Random) -> list[shapes.Scene]:
    """Seven scenes that each differ from ``scene`` in one attribute: colour, shape or background."""
    colors = [c for c in shapes.COLORS if c not in (scene.color, scene.background)]
    other_shapes = [s for s in shapes.SHAPES if s != scene.shape]
    changes = (
        [("color", c) for c in rng.sample(colors, 2)]
        + [("shape", s) for s in rng.sample(other_shapes, 3)]
        + [("background", b) for b in rng.sample(colors, 2)]
    )
    return [
        shapes.with_attribute(scene, attribute, value) for attribute, value in changes
    ]


@torch.no_grad()
def clip_top1(choice: ModelChoice, n: int = 200, split: str = "train") -> float:
    """How often CLIP ranks a picture's own caption first among it and its seven near misses."""
    model, processor = load_clip(choice)
    rng = random.Random(400)
    hits = 0
    for _ in range(n):
        scene = shapes.random_scene(rng, split)
        captions = [shapes.caption(s) for s in [scene, *near_misses(scene, rng)]]
        inputs = processor(
            text=captions,
            images=shapes.render(scene, seed=rng.randrange(2**31)),
            return_tensors="pt",
            padding=True,
        )
        logits = model(**inputs).logits_per_image[0]  # (8,): a tie counts as a miss
        hits += int(logits[0] > logits[1:].max())
    return hits / n


def judge_accuracy(vae: AutoencoderKL, n: int = 600) -> float:
    """How often the judge names the shape of fresh renders (clean, blurred and through the VAE) right."""
    pictures, scenes = shapes.make_dataset(n, seed=700)
    seen = judge_many(
        reconstruct(vae, pictures[: n // 2])
        + [Image.fromarray(p) for p in pictures[n // 2 :]]
    )
    return (
        sum(
            j.shows(shapes.Scene(s.shape, s.color, s.background))
            for j, s in zip(seen, scenes)
        )
        / n
    )


def generation_prompts(n: int) -> list[shapes.Scene]:
    """``n`` plain scenes (size and place unsaid), half of them combinations never seen in training."""
    rng = random.Random(500)
    scenes = [
        shapes.random_scene(rng, "heldout" if i % 2 else "train") for i in range(n)
    ]
    return [shapes.Scene(s.shape, s.color, s.background) for s in scenes]


@torch.no_grad()
def generate(
    pipe: StableDiffusionPipeline,
    prompts: list[str],
    steps: int = STEPS,
    guidance_scale: float = GUIDANCE,
    seeds: list[int] | None = None,
    batch: int = 16,
) -> list[Image.Image]:
    """One picture per prompt, seed ``i`` for the i-th unless ``seeds`` says otherwise."""
    seeds = seeds if seeds is not None else list(range(len(prompts)))
    pictures = []
    for start in range(0, len(prompts), batch):
        generators = [
            torch.Generator().manual_seed(seed) for seed in seeds[start : start + batch]
        ]
        pictures += pipe(
            prompts[start : start + batch],
            num_inference_steps=steps,
            guidance_scale=guidance_scale,
            generator=generators,
        ).images
    return pictures


def accuracy(judged: list[Judgement], scenes: list[shapes.Scene]) -> dict[str, float]:
    """Shares of pictures whose shape colour, background colour and shape are the asked ones."""
    n = len(scenes)
    return {
        "gen_color_acc": round(
            sum(j.color == s.color for j, s in zip(judged, scenes)) / n, 3
        ),
        "gen_bg_acc": round(
            sum(j.background == s.background for j, s in zip(judged, scenes)) / n, 3
        ),
        "gen_shape_acc": round(
            sum(j.shape == s.shape for j, s in zip(judged, scenes)) / n, 3
        ),
    }


def with_scheduler(pipe: StableDiffusionPipeline, name: str) -> StableDiffusionPipeline:
    """The pipeline with its scheduler swapped for ``name``'s, on the same noise schedule."""
    pipe.scheduler = make_scheduler(name, pipe.scheduler.config)
    return pipe


def scheduler_accuracy(
    pipe: StableDiffusionPipeline, scenes: list[shapes.Scene]
) -> dict[str, dict[str, float]]:
    """Prompt following with each of the course's schedulers: 25 steps, guidance 7.5."""
    prompts = [shapes.caption(s) for s in scenes]
    return {
        name: accuracy(
            judge_many(generate(with_scheduler(pipe, name), prompts)), scenes
        )
        for name in tqdm(GENERATION_SCHEDULERS, desc="schedulers")
    }


def steps_and_guidance(
    pipe: StableDiffusionPipeline, scenes: list[shapes.Scene]
) -> dict[str, object]:
    """Shape-colour accuracy along the guidance scale (PNDM, 25 steps), and with few and with default steps."""
    prompts = [shapes.caption(s) for s in scenes]

    def color_accuracy(
        name: str, steps: int, guidance_scale: float = GUIDANCE
    ) -> float:
        judged = judge_many(
            generate(with_scheduler(pipe, name), prompts, steps, guidance_scale)
        )
        return accuracy(judged, scenes)["gen_color_acc"]

    return {
        "guidance_curve": {
            str(g): color_accuracy("PNDM", STEPS, g) for g in (1.0, 3.0, 7.5, 12.0)
        },
        "few_steps": {
            "PNDM 10": color_accuracy("PNDM", 10),
            "PNDM 20": color_accuracy("PNDM", 20),
            "DPM-Solver++ 10": color_accuracy("DPM-Solver++", 10),
        },
        "pndm_50_color_acc": color_accuracy("PNDM", 50),
    }


def mean_pairwise_distance(pictures: list[Image.Image]) -> float:
    """Mean RMS pixel distance between every two pictures of a list."""
    arrays = [np.asarray(p, dtype=np.float32) for p in pictures]
    return float(
        np.mean(
            [
                np.sqrt(((a - b) ** 2).mean())
                for a, b in itertools.combinations(arrays, 2)
            ]
        )
    )


def seed_spread(
    pipe: StableDiffusionPipeline, scenes: list[shapes.Scene], n_seeds: int = 8
) -> float:
    """How different the pictures of ``n_seeds`` seeds for one prompt are, over the same for as many renders of that
    caption from the data; averaged over the scenes. 1.0: the model varies as much as the world does."""
    pipe = with_scheduler(pipe, "PNDM")
    ratios = []
    for scene in scenes:
        drawn = generate(
            pipe, [shapes.caption(scene)] * n_seeds, seeds=list(range(n_seeds))
        )
        rendered = [shapes.render(scene, seed=seed) for seed in range(n_seeds)]
        ratios.append(mean_pairwise_distance(drawn) / mean_pairwise_distance(rendered))
    return round(float(np.mean(ratios)), 3)


def image_to_image(
    pipe: StableDiffusionPipeline, scenes: list[shapes.Scene]
) -> dict[str, float]:
    """``img2img_keep``: the share of renders whose shape and colours survive strength 0.3 with their own caption;
    ``img2img_follow``: the share that follow another scene's caption at strength 0.8."""
    img2img = StableDiffusionImg2ImgPipeline.from_pipe(with_scheduler(pipe, "PNDM"))
    starts = [shapes.render(scene, seed=i) for i, scene in enumerate(scenes)]
    others = scenes[1:] + scenes[:1]  # each picture is asked to become the next scene
    shares = {}
    for key, strength, targets in (
        ("img2img_keep", 0.3, scenes),
        ("img2img_follow", 0.8, others),
    ):
        pictures = []
        for start in range(0, len(scenes), 16):
            generators = [
                torch.Generator().manual_seed(i)
                for i in range(start, min(start + 16, len(scenes)))
            ]
            pictures += img2img(
                [shapes.caption(s) for s in targets[start : start + 16]],
                image=starts[start : start + 16],
                strength=strength,
                num_inference_steps=STEPS,
                generator=generators,
            ).images
        judged = judge_many(pictures)
        shares[key] = round(
            sum(j.shows(s) for j, s in zip(judged, targets)) / len(scenes), 3
        )
    return shares


def flagship(pipe: StableDiffusionPipeline, n_seeds: int = 4) -> dict[str, float]:
    """For each scheduler, the share of ``n_seeds`` seeds that draw the held-out flagship prompt correctly."""
    return {
        name: sum(
            j.shows(FLAGSHIP)
            for j in judge_many(
                generate(with_scheduler(pipe, name), [FLAGSHIP] * n_seeds)
            )
        )
        / n_seeds
        for name in GENERATION_SCHEDULERS
    }


def exact_denoise(
    noisy: torch.Tensor, alpha_prod_t: torch.Tensor, data: torch.Tensor
) -> torch.Tensor:
    """The best possible prediction of the clean latents (B, D) when the data is exactly ``data`` (N, D)."""
    squared_distances = ((noisy[:, None] - alpha_prod_t.sqrt() * data[None]) ** 2).sum(
        -1
    )  # (B, N)
    return torch.softmax(-squared_distances / (2 * (1 - alpha_prod_t)), dim=1) @ data


@torch.no_grad()
def exact_denoiser_landings(
    vae: AutoencoderKL,
    scheduler_config: dict,
    guidance_scales: tuple[float, ...],
    n_pictures: int = 6000,
    n_prompts: int = 24,
) -> dict[str, dict[str, float]]:
    """For each guidance scale, the share of plain prompts that PNDM, DDIM and LMS land on their own training
    latents in 25 steps with a perfect denoiser.

    The "model" is the exact denoiser of ``n_pictures`` training latents: all of them unconditionally, and those
    whose scene has the prompt's colours and shape conditionally. A failure here is the data's and the scheduler's,
    not a network's, so this checks a data design before anything is trained.
    """
    pictures, scenes = shapes.make_dataset(n_pictures, seed=600)
    data = (
        torch.cat(
            [
                vae.encode(to_pixels(pictures[i : i + 500])).latent_dist.mean
                for i in range(0, n_pictures, 500)
            ]
        ).flatten(1)
        * vae.config.scaling_factor
    )  # (N, 4*h*w)
    key = [(s.color, s.shape, s.background) for s in scenes]
    own = [
        data[[i for i, other in enumerate(key) if other == key[p]]]
        for p in range(n_prompts)
    ]
    landed = {}
    for guidance, name in itertools.product(guidance_scales, ("PNDM", "DDIM", "LMS")):
        scheduler = make_scheduler(name, scheduler_config)
        scheduler.set_timesteps(STEPS)
        latents = torch.randn(
            n_prompts, data.shape[1], generator=torch.Generator().manual_seed(0)
        )
        latents = latents * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            noisy = scheduler.scale_model_input(latents, t)
            alpha_prod_t = scheduler.alphas_cumprod[int(t)]
            uncond = exact_denoise(noisy, alpha_prod_t, data)
            text = torch.cat(
                [
                    exact_denoise(noisy[i : i + 1], alpha_prod_t, own[i])
                    for i in range(n_prompts)
                ]
            )
            pred_original_sample = uncond + guidance * (text - uncond)
            noise_pred = (noisy - alpha_prod_t.sqrt() * pred_original_sample) / (
                1 - alpha_prod_t
            ).sqrt()
            latents = scheduler.step(noise_pred, t, latents).prev_sample
        distances = [
            torch.cdist(latents[i : i + 1], own[i]).min().item()
            for i in range(n_prompts)
        ]
        landed.setdefault(f"guidance {guidance:g}", {})[name] = round(
            sum(d < 2.0 for d in distances) / n_prompts, 3
        )
    return landed


@torch.no_grad()
def speed(pipe: StableDiffusionPipeline, runs: int = 7) -> dict[str, float]:
    """A picture's median time (PNDM, 25 steps, guidance 7.5), one guided UNet call's, and the UNet's share of the
    picture: calls per picture times the time of a call, over the time of the picture."""
    pipe = with_scheduler(pipe, "PNDM")
    calls = []
    hook = pipe.unet.register_forward_pre_hook(lambda *_: calls.append(1))
    picture = median_seconds(
        lambda: pipe(FLAGSHIP, num_inference_steps=STEPS), repeats=runs, warmups=2
    )
    hook.remove()
    calls_per_picture = len(calls) // (runs + 2)
    unet_call = unet_seconds_per_call(pipe.unet)
    return {
        "seconds_per_image": round(picture, 3),
        "unet_ms_per_call": round(unet_call * 1000, 1),
        "unet_calls_per_image": calls_per_picture,
        "unet_share": round(calls_per_picture * unet_call / picture, 3),
    }


def unet_seconds_per_call(unet: UNet2DConditionModel, runs: int = 60) -> float:
    """Median seconds of one guided UNet call: a batch of two latents (empty caption and caption)."""
    latents = torch.randn(
        2, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size
    )
    text_embeddings = torch.randn(2, 77, unet.config.cross_attention_dim)
    return median_seconds(
        lambda: unet(latents, 500, encoder_hidden_states=text_embeddings),
        repeats=runs,
        warmups=5,
    )


def controlnet_figures(
    pipe: StableDiffusionPipeline, controlnet_dir: Path | None
) -> dict[str, float]:
    """``controlnet_shape_acc`` and the colours' accuracies of the ControlNet in ``controlnet_dir``, trained for this
    model; nothing where there is none."""
    if controlnet_dir is None or not (controlnet_dir / "config.json").exists():
        return {}
    return controlnet_shape_accuracy(
        pipe, ControlNetModel.from_pretrained(controlnet_dir)
    )


def evaluate(
    model_dir: Path, n_prompts: int = 64, controlnet_dir: Path | None = None
) -> dict[str, object]:
    """Every figure of the model card, as one dict; the three accuracies are the worst over the schedulers.

    With ``controlnet_dir``, the ControlNet trained for this model is scored too (``controlnet_shape_acc``)."""
    choice = ModelChoice(str(model_dir), "cpu", torch.float32, "evaluation")
    pipe = StableDiffusionPipeline.from_pretrained(
        model_dir, safety_checker=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    scenes = generation_prompts(n_prompts)
    per_scheduler = scheduler_accuracy(pipe, scenes)
    worst = {
        key: min(row[key] for row in per_scheduler.values())
        for key in next(iter(per_scheduler.values()))
    }
    return {
        "vae_psnr_db": round(vae_psnr_db(pipe.vae), 2),
        "clip_top1": clip_top1(choice),
        "clip_top1_heldout": clip_top1(choice, split="heldout"),
        **worst,
        "per_scheduler": per_scheduler,
        **steps_and_guidance(pipe, scenes),
        "seed_spread": seed_spread(pipe, scenes[:8]),
        **image_to_image(pipe, scenes),
        "flagship": flagship(pipe),
        "judge_acc": round(judge_accuracy(pipe.vae), 3),
        "exact_denoiser_landed": exact_denoiser_landings(
            pipe.vae, pipe.scheduler.config, (GUIDANCE, 3.0)
        ),
        **speed(pipe),
        **controlnet_figures(pipe, controlnet_dir),
        "prompts": n_prompts,
    }
