"""Checks for chapter 8, "Speed and memory"."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..memory import (
    GIB,
    attention_scores_bytes,
    feed_forward_bytes,
    vae_decoder_largest_bytes,
    weights_bytes,
)
from ..sd15 import sd15_config, sd15_on_meta
from . import (
    Verdict,
    expect,
    expect_integer,
    expect_keys,
    expect_near,
    expect_number,
    run_check,
    run_function_check,
    run_open_question,
)

SCORES_PROMPTS = 4  # the exercise's batch of prompts, at SD v1.5's native 512x512


class _LargestTensor(TorchFunctionMode):
    """Records the most elements of any tensor a block of code makes, and whether it called SDPA."""

    def __init__(self) -> None:
        super().__init__()
        self.numel, self.called_sdpa = 0, False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.called_sdpa |= func is F.scaled_dot_product_attention
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(tensor, torch.Tensor):
                self.numel = max(self.numel, tensor.numel())
        return out


SLICED_SHAPES = {
    "self-attention": (8, 256, 256, 16),
    "cross-attention": (8, 256, 77, 16),
}
SLICE_SIZES = (2, 3)  # 3 does not divide the 8 rows: the last slice is shorter


def check_sliced_attention(sliced_attention: Any) -> Verdict:
    """A function (query, key, value, slice_size) -> attention equal to ``F.scaled_dot_product_attention``,
    computed ``slice_size`` rows of the batch x heads dimension at a time, as diffusers' ``SlicedAttnProcessor``."""

    def test(fn: Any) -> None:
        generator = torch.Generator().manual_seed(0)
        for kind, (rows, n, m, d) in SLICED_SHAPES.items():
            query = torch.randn(rows, n, d, generator=generator)  # (B x heads, N, d)
            key, value = (torch.randn(rows, m, d, generator=generator) for _ in "kv")
            expected = F.scaled_dot_product_attention(query, key, value)
            for slice_size in SLICE_SIZES:
                with _LargestTensor() as largest:
                    got = fn(query, key, value, slice_size)
                expect(
                    not largest.called_sdpa,
                    "write the attention yourself, softmax(Q K^T / sqrt(d)) V: "
                    "F.scaled_dot_product_attention hides the scores this exercise is about",
                )
                expect(
                    isinstance(got, torch.Tensor) and got.shape == expected.shape,
                    f"{kind}: expected a tensor shaped {tuple(expected.shape)}, got "
                    f"{getattr(got, 'shape', type(got).__name__)}",
                )
                error = (got - expected).abs().max().item()
                expect(
                    error < 1e-4,
                    f"{kind}, slice_size={slice_size}: differs from "
                    f"F.scaled_dot_product_attention by up to {error:.3g}: scale the scores "
                    "by 1 / sqrt(d), take the softmax over the keys, and cover every row, "
                    "the last slice too",
                )
                allowed = max(slice_size * n * m, got.numel())
                expect(
                    largest.numel <= allowed,
                    f"{kind}, slice_size={slice_size}: a tensor of {largest.numel} "
                    f"elements was made, more than one slice's scores ({slice_size} x {n} "
                    f"x {m} = {slice_size * n * m}): compute the scores of slice_size rows "
                    "of the first dimension at a time",
                )

    return run_function_check(
        "ex-08-sliced-attention",
        sliced_attention,
        test,
        "a function of (query, key, value, slice_size)",
    )


def check_unet_fp16_gib(unet_fp16_gib: Any) -> Verdict:
    """GiB of SD v1.5's UNet weights in float16, from its config."""

    def test(value: Any) -> None:
        expect_number(value, "a number of GiB")
        unet = sd15_on_meta("unet")
        want = weights_bytes(unet, torch.float16) / GIB
        expect_near(
            value,
            want,
            f"expected {want:.3f} GiB ({sum(p.numel() for p in unet.parameters()):,} parameters x 2 bytes / 2**30), "
            f"got {value}",
            [(2 * want, "that is float32's size: float16 takes 2 bytes")],
            rel_tol=0.01,
        )

    return run_check("ex-08-unet-weights", unet_fp16_gib, test)


def check_scores_gib(scores_gib: Any) -> Verdict:
    """GiB of one top-level self-attention's scores for 4 prompts at 512x512 in float16, with guidance."""

    def test(value: Any) -> None:
        expect_number(value, "a number of GiB")
        config = sd15_config("unet")
        want = (
            attention_scores_bytes(config, config["sample_size"], 2 * SCORES_PROMPTS)
            / GIB
        )
        mistakes = [
            (
                want / 2,
                "classifier-free guidance runs the UNet on two rows per prompt (with and without the text)",
            ),
            (want / 8, "each of the 8 heads has its own score matrix"),
        ]
        expect_near(
            value, want, f"expected {want:.3f} GiB, got {value}", mistakes, rel_tol=0.01
        )

    return run_check("ex-08-scores", scores_gib, test)


SMALL_GPU_BUDGET = 7 * GIB  # what PyTorch sees of an 8 GB card
SETUPS = {  # label: (attention, VAE slicing), as in the chapter
    "classic attention": ("classic attention", False),
    "SDPA": ("SDPA", False),
    "SDPA + VAE slicing": ("SDPA", True),
}


def largest_batches(budget: float) -> dict[str, int]:
    """For each setup, the largest batch of 512x512 pictures whose estimated peak (the chapter's floor: float16
    weights, a 1 GiB margin, the larger of the loop's and the decode's largest tensors) fits in ``budget`` bytes;
    0 when not even one picture fits."""
    unet_config, vae_config = sd15_config("unet"), sd15_config("vae")
    latent = unet_config["sample_size"]
    parts = ("unet", "vae", "text_encoder")
    fixed = sum(weights_bytes(sd15_on_meta(p), torch.float16) for p in parts) + GIB
    loop = {  # per picture, two UNet rows under guidance
        "classic attention": 2 * attention_scores_bytes(unet_config, latent, batch=2),
        "SDPA": feed_forward_bytes(unet_config, latent, batch=2),
    }
    decode = 3 * vae_decoder_largest_bytes(vae_config, latent, batch=1)

    def peak(batch: int, attention: str, vae_slicing: bool) -> float:
        return fixed + max(
            loop[attention] * batch, decode * (1 if vae_slicing else batch)
        )

    return {
        label: max((b for b in range(1, 1025) if peak(b, *setup) <= budget), default=0)
        for label, setup in SETUPS.items()
    }


def check_small_gpu(fits_in_7gib: Any, explanation: Any) -> Verdict:
    """{setup: the largest batch that fits in 7 GiB}, and an explanation of which switch to turn first."""

    def test(fits: Any) -> None:
        expect_keys(fits, SETUPS, "fits_in_7gib")
        for label, want in largest_batches(SMALL_GPU_BUDGET).items():
            got = expect_integer(fits[label], f"fits_in_7gib[{label!r}]")
            expect(
                got == want,
                f"fits_in_7gib[{label!r}] is {got}, expected {want}: the chapter's "
                "peak(batch, attention, vae_slicing), with a budget of 7 GiB "
                "(7 * GIB), and the largest batch from 1 to 1024 whose peak fits",
            )

    return run_open_question("ex-08-small-gpu", fits_in_7gib, explanation, test)
