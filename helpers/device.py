"""Which device to compute on, in which precision, and how much memory a piece of work adds at its peak.

Time is ``helpers.timing``'s: warm-ups and the median of repeats, which one call measured here cannot give.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil
import torch


def pick_device() -> str:
    """The fastest device here: ``"cuda"``, then Apple's ``"mps"``, then ``"cpu"``."""
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str | torch.device) -> torch.dtype:
    """``float16`` on CUDA (half the memory, tensor cores), ``float32`` everywhere else.

    Half precision on a CPU fails or crawls: many CPU kernels (the VAE's group norm and convolutions among them) have no
    float16 version and raise ``"... not implemented for 'Half'"``, and those that exist are slower than float32.
    """
    try:
        device_type = torch.device(device).type
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"expected a device such as 'cuda', 'mps' or 'cpu', got {device!r}"
        ) from error
    return torch.float16 if device_type == "cuda" else torch.float32


def native_bfloat16(device: str | torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively: CUDA GPUs from compute capability 8.0 (Ampere) on.

    Older GPUs (Colab's T4 is 7.5) emulate it with slow convolutions and a math attention that builds the whole score
    matrix. CPUs and Apple GPUs have bfloat16 kernels of their own, so they count as native here.
    """
    device = torch.device(device)
    return device.type != "cuda" or torch.cuda.get_device_capability(device) >= (8, 0)


@dataclass(frozen=True)
class Measurement:
    """The peak memory a call added, how it was measured, and what the call returned."""

    peak_mb: float
    memory_kind: str  # "cuda allocated" or "process RSS"
    result: Any = None


def measure(fn: Callable[[], Any], device: str | torch.device = "cpu") -> Measurement:
    """Run ``fn()`` once and return the peak memory it added, and its result.

    On CUDA the peak is ``torch.cuda.max_memory_allocated``; on a CPU, torch's allocations are invisible to
    ``tracemalloc``, so a thread samples the process's resident memory (RSS) every millisecond instead.
    """
    if not callable(fn):
        raise TypeError(
            f"expected a function to call with no arguments, e.g. lambda: pipe(prompt), got {fn!r}"
        )
    return (
        _measure_cuda(fn) if torch.device(device).type == "cuda" else _measure_rss(fn)
    )


def _measure_cuda(fn: Callable[[], Any]) -> Measurement:
    """The peak of memory ``fn()`` allocated on the GPU, its queued work finished."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    result = fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    return Measurement(peak / 2**20, "cuda allocated", result)


def _measure_rss(fn: Callable[[], Any]) -> Measurement:
    """Run ``fn()`` while a thread samples the process's resident memory for its peak."""
    process, peak, done = psutil.Process(), [0], threading.Event()
    baseline = process.memory_info().rss

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = fn()
    finally:  # stop the sampler even when fn fails
        done.set()
        sampler.join()
    return Measurement(max(0, peak[0] - baseline) / 2**20, "process RSS", result)
