"""The one timer: warm-ups are left out, the median ignores a slow spell, and calls are timed in turns."""

from __future__ import annotations

import time

import pytest

from helpers.timing import compare_seconds, median_seconds


def test_warmups_are_not_timed_and_the_median_ignores_one_slow_run() -> None:
    delays = iter(
        [0.2, 0.0, 0.0, 0.3, 0.0]
    )  # one warm-up, then four runs with one slow spell
    assert median_seconds(lambda: time.sleep(next(delays)), repeats=4, warmups=1) < 0.05


def test_calls_are_timed_in_turns() -> None:
    order: list[str] = []
    compare_seconds(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")},
        repeats=2,
        warmups=1,
    )
    assert order == ["a", "b", "a", "b", "a", "b"]


def test_a_slower_call_measures_slower() -> None:
    times = compare_seconds(
        {"fast": lambda: None, "slow": lambda: time.sleep(0.02)}, repeats=3, warmups=0
    )
    assert times["slow"] > times["fast"] + 0.01


@pytest.mark.parametrize(("repeats", "warmups"), [(0, 1), (3, -1)])
def test_bad_counts_are_refused(repeats: int, warmups: int) -> None:
    with pytest.raises(ValueError, match="need repeats >= 1 and warmups >= 0"):
        median_seconds(lambda: None, repeats=repeats, warmups=warmups)
