"""Training of the judge's shape classifier (``helpers.judge``) on outlines of rendered pictures.

A generated picture's edges are soft, so the classifier learns from three kinds of pictures: clean renders, blurred
ones, and renders passed through the model's own VAE. It never sees a generated picture.
"""

from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from PIL import Image, ImageFilter
from safetensors.torch import save_file
from tqdm.auto import tqdm

from .. import shapes
from ..judge import JUDGED_SHAPES, ShapeClassifier, foreground
from .config import TinyConfig
from .train import to_pixels


@torch.no_grad()
def reconstruct(vae: AutoencoderKL, pictures: np.ndarray) -> list[Image.Image]:
    """Pictures through the VAE and back (latent mean, no sampling)."""
    decoded = vae.decode(
        vae.encode(to_pixels(pictures).to(vae.device)).latent_dist.mode()
    ).sample
    array = (
        ((decoded.clamp(-1, 1) + 1) * 127.5)
        .round()
        .byte()
        .permute(0, 2, 3, 1)
        .cpu()
        .numpy()
    )
    return [Image.fromarray(a) for a in array]


def judge_dataset(n: int, seed: int) -> tuple[np.ndarray, list[shapes.Scene]]:
    """Renders of every shape the judge knows: training scenes, one in six turned into a new shape."""
    rng = random.Random(seed)
    pictures, scenes = shapes.make_dataset(n, seed=seed)
    for i in range(0, n, 6):
        scenes[i] = shapes.with_attribute(
            scenes[i], "shape", rng.choice(shapes.NEW_SHAPES)
        )
        pictures[i] = np.asarray(shapes.render(scenes[i], seed=rng.randrange(2**31)))
    return pictures, scenes


def outline_examples(
    vae: AutoencoderKL, n: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Foreground masks (n, 1, H, W) of renders, a third through the VAE and a third blurred, and their shapes (n,)."""
    rng = random.Random(seed)
    pictures, scenes = judge_dataset(n, seed)
    through_vae = reconstruct(vae, pictures[: n // 3])
    blurred = [
        Image.fromarray(p).filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
        for p in pictures[n // 3 : 2 * n // 3]
    ]
    clean = [Image.fromarray(p) for p in pictures[2 * n // 3 :]]
    masks = np.stack([foreground(p)[2] for p in through_vae + blurred + clean])
    labels = torch.tensor([JUDGED_SHAPES.index(s.shape) for s in scenes])
    return torch.from_numpy(masks).float().unsqueeze(1), labels


def train_shape_classifier(vae: AutoencoderKL, config: TinyConfig) -> float:
    """Train the judge's shape classifier, save it beside ``helpers.judge``, and return its accuracy on fresh
    examples of the same three kinds."""
    torch.manual_seed(config.seed)
    masks, labels = outline_examples(vae, config.judge_examples, seed=config.seed + 100)
    classifier = ShapeClassifier()
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=config.judge_lr)
    for _ in tqdm(
        range(config.judge_steps), desc="training the shape judge", mininterval=5
    ):
        index = torch.randint(0, len(labels), (config.judge_batch,))
        loss = F.cross_entropy(classifier(masks[index]), labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test_masks, test_labels = outline_examples(
        vae, config.judge_examples // 5, seed=config.seed + 200
    )
    with torch.no_grad():
        accuracy = (
            (classifier(test_masks).argmax(1) == test_labels).float().mean().item()
        )
    save_file(
        {k: v.contiguous() for k, v in classifier.state_dict().items()},
        config.judge_weights,
    )
    return accuracy
