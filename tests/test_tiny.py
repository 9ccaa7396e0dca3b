"""tiny-shapes-sd, the model the course ships: SD v1.5's tokenizer, loading offline, its pictures, its training."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler
from safetensors import safe_open
from transformers import CLIPTokenizer

import helpers
from helpers import decode_latents, encode_image, shapes
from helpers.judge import judge_many
from helpers.shapes import HELD_OUT, parse_caption

BOS, EOS = 49406, 49407
# Ids of SD v1.5's tokenizer. The first line is the one its documentation shows; the others were computed from the
# shipped vocabulary and agree with reference_bpe below; the last one needs BPE merges inside words.
SD_IDS = {
    "a photo of an astronaut": [BOS, 320, 1125, 539, 550, 18376, EOS],
    "a red circle on a blue background": [
        BOS,
        320,
        736,
        7117,
        525,
        320,
        1746,
        5994,
        EOS,
    ],
    "an orange cross, purple background": [BOS, 550, 4287, 3417, 267, 5496, 5994, EOS],
    "A bluish circleish background": [BOS, 320, 1263, 1061, 33574, 1061, 5994, EOS],
}
PROMPTS = [  # shapes on backgrounds, all seen in training ("a red circle on a blue background" is not)
    "a blue circle on a yellow background",
    "a yellow square on a black background",
    "a white star on a green background",
    "a purple cross on an orange background",
]
# A prelude for a child process: any connection attempt fails (besides cutting the network where the kernel lets us).
NO_SOCKETS = """
import socket
def refuse(*args, **kwargs):
    raise OSError("network access attempted")
socket.socket.connect = refuse
"""
CAN_UNSHARE = (
    shutil.which("unshare") is not None
    and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
)


def run_offline(
    code: str, *args: str, timeout: int, **env: str
) -> subprocess.CompletedProcess:
    """Run Python code in a child process with the network cut, on the CPU; returns its output."""
    command = [sys.executable, "-c", NO_SOCKETS + code, *args]
    if CAN_UNSHARE:
        command = ["unshare", "-n", *command]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", **env}
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=Path(helpers.__file__).parents[1],
    )
    assert result.returncode == 0, result.stderr
    return result


def reference_bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """OpenAI CLIP's byte-pair encoding of one lower-case ASCII word: merge the best-ranked pair until none is left."""
    parts = list(word[:-1]) + [word[-1] + "</w>"]
    while len(parts) > 1:
        best = min(
            itertools.pairwise(parts), key=lambda pair: ranks.get(pair, math.inf)
        )
        if best not in ranks:
            break
        merged, i = [], 0
        while i < len(parts):
            if tuple(parts[i : i + 2]) == best:
                merged.append(parts[i] + parts[i + 1])
                i += 2
            else:
                merged.append(parts[i])
                i += 1
        parts = merged
    return parts


@pytest.fixture(scope="module")
def tokenizer(model_dir: Path) -> CLIPTokenizer:
    return CLIPTokenizer.from_pretrained(model_dir / "tokenizer")


@pytest.mark.parametrize(("text", "ids"), SD_IDS.items())
def test_tokenizer_gives_sd_v15s_ids(tokenizer, text, ids):
    assert tokenizer(text).input_ids == ids


@pytest.mark.parametrize(("text", "ids"), SD_IDS.items())
def test_the_ids_follow_clips_bpe_over_the_shipped_vocabulary(model_dir, text, ids):
    folder = model_dir / "tokenizer"
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    # after the "#version" line
    merges = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()[1:]
    ranks = {tuple(merge.split()): rank for rank, merge in enumerate(merges)}
    words = re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]+", text.lower())
    assert [BOS] + [
        vocab[part] for word in words for part in reference_bpe(word, ranks)
    ] + [EOS] == ids


def test_tokenizer_pads_to_77_with_end_of_text(tokenizer):
    ids = tokenizer(
        "a photo of an astronaut",
        padding="max_length",
        max_length=tokenizer.model_max_length,
    ).input_ids
    assert tokenizer.model_max_length == 77 and len(tokenizer) == 49408
    assert (
        len(ids) == 77
        and ids[:7] == SD_IDS["a photo of an astronaut"]
        and set(ids[7:]) == {EOS}
    )
    assert len(tokenizer(" ".join(["red"] * 100), truncation=True).input_ids) == 77


def test_the_folder_loads_offline_as_float32_without_warnings(model_dir):
    """Loaded as a chapter loads it, after its imports and ``quiet_libraries()``, nothing is written to stderr.

    (Where torchvision is missing, transformers' notice that it falls back to PIL comes with the imports.)"""
    code = (
        "import sys\n"
        "from diffusers import StableDiffusionPipeline\n"
        "from helpers import load_clip, load_pipeline, quiet_libraries, resolve_model\n"
        "quiet_libraries()\n"
        "print('imported', file=sys.stderr)\n"
        "choice = resolve_model()\n"
        "plain = StableDiffusionPipeline.from_pretrained(choice.model)\n"
        "pipe = load_pipeline(choice=choice)\n"
        "load_clip(choice)\n"
        "parts = [p for pl in (plain, pipe) for m in (pl.vae, pl.text_encoder, pl.unet) for p in m.parameters()]\n"
        "print(sorted({str(p.dtype) for p in parts}), plain.safety_checker, plain.feature_extractor)\n"
    )
    result = run_offline(code, timeout=300, SD_BOOK_MODEL=str(model_dir))
    assert result.stderr.endswith("imported\n"), result.stderr
    assert result.stdout.splitlines() == [
        "Model: tiny-shapes-sd on cpu, float32 (set by SD_BOOK_MODEL)",
        "['torch.float32'] None None",
    ]


def test_the_folder_has_stable_diffusions_shape(tiny_pipe):
    vae, unet, text_encoder = (
        tiny_pipe.vae.config,
        tiny_pipe.unet.config,
        tiny_pipe.text_encoder.config,
    )
    assert (
        len(vae.block_out_channels) == 4
        and vae.latent_channels == 4
        and vae.sample_size == 64
    )
    assert unet.in_channels == unet.out_channels == 4 and unet.sample_size == 8
    assert unet.cross_attention_dim == text_encoder.hidden_size
    assert (
        text_encoder.max_position_embeddings == 77 and text_encoder.vocab_size == 49408
    )
    assert 0.05 < vae.scaling_factor < 20


def test_the_scheduler_is_sd_v15s(tiny_pipe):
    config = tiny_pipe.scheduler.config
    assert type(tiny_pipe.scheduler).__name__ == "PNDMScheduler"
    assert (config.beta_start, config.beta_end, config.beta_schedule) == (
        0.00085,
        0.012,
        "scaled_linear",
    )
    assert (config.num_train_timesteps, config.steps_offset, config.skip_prk_steps) == (
        1000,
        1,
        True,
    )
    assert DDIMScheduler.from_config(config).config.clip_sample is False


def test_the_folder_is_small_safetensors_storing_nothing_twice(model_dir):
    files = [path for path in model_dir.rglob("*") if path.is_file()]
    assert sum(path.stat().st_size for path in files) <= 40e6
    assert not [
        path.name for path in files if path.suffix in (".bin", ".pt", ".pth", ".ckpt")
    ]
    with safe_open(model_dir / "clip" / "model.safetensors", "pt") as clip:
        # The text tower is stored once, as the text_encoder. (safe_open has keys() but is not iterable.)
        text_keys = [key for key in clip.keys() if key.startswith("text_model.")]  # noqa: SIM118
    assert not text_keys


def generate(pipe, prompts: list[str], seeds: list[int], steps: int = 25) -> np.ndarray:
    """Pictures (B, H, W, 3) in [0, 1] from the real pipeline, one generator per prompt."""
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    return pipe(
        prompts,
        num_inference_steps=steps,
        guidance_scale=7.5,
        generator=generators,
        output_type="np",
    ).images


def test_the_same_seed_gives_the_same_picture(tiny_pipe):
    first = generate(tiny_pipe, PROMPTS[:1], [7], steps=10)
    again = generate(tiny_pipe, PROMPTS[:1], [7], steps=10)
    other = generate(tiny_pipe, PROMPTS[:1], [8], steps=10)
    assert first.shape == (1, 64, 64, 3)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_generated_pictures_have_the_asked_colours_and_shapes(tiny_pipe):
    scenes = [parse_caption(prompt) for prompt in PROMPTS]
    assert (
        not {(scene.color, scene.shape, scene.background) for scene in scenes}
        & HELD_OUT
    )
    pictures = generate(
        tiny_pipe, PROMPTS, seeds=[0, 1, 2, 3]
    )  # (4, 64, 64, 3) in [0, 1]
    seen = judge_many(
        [(picture * 255).round().astype(np.uint8) for picture in pictures]
    )
    assert sum(j.shows(scene) for j, scene in zip(seen, scenes)) >= 3, [
        j.says() for j in seen
    ]


def test_the_vae_reconstructs_shapes_it_never_saw(tiny_pipe):
    # The shipped VAE learned from plain pictures (flat colours, upright): held-out scenes drawn that way.
    pictures = [
        np.asarray(shapes.render(scene)) for scene in shapes.all_scenes("heldout")[::3]
    ]
    errors = []
    for picture in pictures:
        (back,) = decode_latents(
            tiny_pipe.vae, encode_image(tiny_pipe.vae, picture, sample=False)
        )
        errors.append(np.mean((np.asarray(back, dtype=np.float64) - picture) ** 2))
    psnr = 10 * np.log10(255**2 / np.mean(errors))
    assert psnr >= 22, f"PSNR {psnr:.1f} dB"


def test_quick_training_lowers_every_loss(model_dir, tmp_path):
    workdir = tmp_path / "work"
    code = "import runpy; runpy.run_module('helpers.tiny', run_name='__main__')"
    result = run_offline(
        code,
        "train",
        "--quick",
        "--out",
        str(tmp_path / "out"),
        "--workdir",
        str(workdir),
        timeout=600,
    )
    losses = json.loads(result.stdout.strip().splitlines()[-1])  # {part: [first, last]}
    assert {"vae", "clip", "unet"} <= set(losses)
    for part, (first, last) in losses.items():
        assert last < first, f"{part}: loss went from {first} to {last}"
    assert (tmp_path / "out" / "model_index.json").exists() and (
        workdir / "judge.safetensors"
    ).exists()
