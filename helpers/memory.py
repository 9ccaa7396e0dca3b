"""How big Stable Diffusion's parts and activations are, and the memory switches that chapters 0 and 8 measure.

Chapter 8 measures time and memory on the reader's own device, then uses these sizes to say which batch sizes of the
real 512x512 model fit on a 16 GB GPU. The sizes come from configs rather than a GPU: the real model is built on
PyTorch's ``meta`` device (``helpers.sd15``), where every parameter has its shape and dtype but no storage.
``parameter_count`` is the one chapter 0 writes where it counts the parts of a pipeline.
"""

from __future__ import annotations

import ctypes
import gc
import platform
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

GIB = 2**30
MIB = 2**20


def device_name(device: str | torch.device) -> str:
    """What a benchmark ran on: the GPU's name, or the CPU's model and the threads PyTorch uses."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple GPU (mps) on {platform.machine()}"
    cpuinfo, model = Path("/proc/cpuinfo"), platform.processor() or platform.machine()
    if cpuinfo.exists():
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            model,
        )
    threads = torch.get_num_threads()
    return f"{model} CPU, {threads} thread{'s' if threads != 1 else ''}"


def parameter_count(part) -> int:
    """Number of weights in a part (0 for the tokenizer and the scheduler, which
    have none)."""
    return (
        sum(p.numel() for p in part.parameters())
        if isinstance(part, torch.nn.Module)
        else 0
    )


def weights_bytes(module: torch.nn.Module, dtype: torch.dtype | None = None) -> int:
    """Bytes the module's parameters take as they are, or when stored as ``dtype``."""
    if dtype is None:
        return sum(p.numel() * p.element_size() for p in module.parameters())
    return dtype_bytes(sum(p.numel() for p in module.parameters()), dtype)


def dtype_bytes(elements: int, dtype: torch.dtype) -> int:
    """Bytes that ``elements`` numbers take when stored as ``dtype``."""
    return elements * torch.finfo(dtype).bits // 8


def attention_heads(unet_config: Mapping[str, Any]) -> int:
    """Heads of the UNet's first attention level.

    SD v1's config calls the number of heads ``attention_head_dim`` (8), a naming slip diffusers keeps for
    compatibility: it reads ``num_attention_heads`` first and falls back to ``attention_head_dim``.
    """
    heads = unet_config.get("num_attention_heads") or unet_config["attention_head_dim"]
    return heads[0] if isinstance(heads, (list, tuple)) else heads


def attention_scores_bytes(
    unet_config: Mapping[str, Any],
    latent_size: int,
    batch: int,
    dtype: torch.dtype = torch.float16,
) -> int:
    """Bytes of the first level's self-attention scores, (batch * heads, N, N) with N = latent_size**2 tokens.

    ``batch`` counts the UNet's batch: two rows per picture under classic classifier-free guidance.
    """
    tokens = latent_size**2  # 4096 for SD's 64x64 latents
    return dtype_bytes(batch * attention_heads(unet_config) * tokens**2, dtype)


def vae_decoder_largest_bytes(
    vae_config: Mapping[str, Any],
    latent_size: int,
    batch: int,
    dtype: torch.dtype = torch.float16,
) -> int:
    """Bytes of the largest feature map in the VAE's decoder: each up block doubles the side, keeps its channels."""
    channels = list(
        reversed(vae_config["block_out_channels"])
    )  # SD: 512, 512, 256, 128
    elements = 0
    for level, width in enumerate(channels):
        side = latent_size * 2 ** min(
            level + 1, len(channels) - 1
        )  # after the block's upsampler (the last has none)
        elements = max(elements, width * side**2)
    return dtype_bytes(batch * elements, dtype)


def feed_forward_bytes(
    unet_config: Mapping[str, Any],
    latent_size: int,
    batch: int,
    dtype: torch.dtype = torch.float16,
) -> int:
    """Bytes of the first level's feed-forward hidden layer: GEGLU widens each token to 8x the channels (2 x 4x)."""
    channels = unet_config["block_out_channels"][0]
    return dtype_bytes(batch * latent_size**2 * 8 * channels, dtype)


def release_freed_memory(device: str | torch.device) -> None:
    """Hand memory that torch has freed back to the system, so that each measured peak starts from the same place.

    On CUDA that is the caching allocator's blocks; on Linux, the C library's free lists (``malloc_trim``).
    """
    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
    elif sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def held_mb(device: str | torch.device, *modules: torch.nn.Module) -> float:
    """Memory held before a call: torch's allocations on a GPU; on a CPU, the weights of ``modules``."""
    if torch.device(device).type == "cuda":
        return torch.cuda.memory_allocated(device) / MIB
    return sum(weights_bytes(module) for module in modules) / MIB


def nothing() -> None:
    """A switch that changes nothing: the baseline row of a table of switches."""


@contextmanager
def switched(
    enable: Callable[[], object], disable: Callable[[], object] = nothing
) -> Iterator[None]:
    """``enable()`` on entry and ``disable()`` on exit, even when the body or ``enable`` fails, so a memory
    switch measured in one row of a table never leaks into the next."""
    try:
        enable()
        yield
    finally:
        disable()
