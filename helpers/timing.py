"""The course's one timer: warm up first, then take the median of repeats, interleaved when calls are compared.

A single timing on a shared machine can be off by a factor of two: the first call pays one-off costs (memory,
kernel choice, caches), and another process may take the cores for a while. Warm-ups remove the first; the median
of several repeats, taken in turns (A, B, A, B, ...) when two calls are compared, removes most of the second, since
a slow spell then hits every call alike. The sentences that chapters write from these figures are computed from them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def _synchronize() -> None:
    """Wait for queued GPU work, so a timer stops when the work is done, not when it was queued."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def seconds_of(call: Callable[[], object]) -> float:
    """Wall time of one call."""
    _synchronize()
    start = time.perf_counter()
    call()
    _synchronize()
    return time.perf_counter() - start


def compare_seconds(
    calls: dict[str, Callable[[], object]], repeats: int = 5, warmups: int = 1
) -> dict[str, float]:
    """Median seconds of each call: every call warmed up, then timed ``repeats`` times in turns."""
    if repeats < 1 or warmups < 0:
        raise ValueError(
            f"need repeats >= 1 and warmups >= 0, got repeats={repeats}, warmups={warmups}"
        )
    for call in calls.values():
        for _ in range(warmups):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            times[name].append(seconds_of(call))
    return {name: statistics.median(values) for name, values in times.items()}


def median_seconds(
    call: Callable[[], object], repeats: int = 5, warmups: int = 1
) -> float:
    """Median seconds of one call over ``repeats`` runs, after ``warmups`` untimed ones."""
    return compare_seconds({"call": call}, repeats, warmups)["call"]
