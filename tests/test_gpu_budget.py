"""Every chapter fits Colab's free T4 in under 5 minutes (estimated from its counted work), and says so at its top.

The counts come from the chapters' own run under nbmake (tests/budget_plugin.py gives each kernel its budget file and
runs these tests last). A chapter whose counts are missing or older than the notebook runs here, counted, once.
After a chapter changes, ``python tests/test_gpu_budget.py`` writes each chapter's estimate into its opening line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from budget_plugin import BUDGET_DIR, kernel_environment
from built_book import chapters
from nbclient import NotebookClient

from helpers.budget import T4_SECONDS_PER_PART_LOAD, t4_seconds

LIMIT_MINUTES = 5
# Work that only the GPU world does, which the CPU run cannot count. None now: chapter 8 times torch.compile (minutes
# of compiling on Colab) only when the reader sets TIME_COMPILE = True.
GPU_ONLY_SECONDS: dict[str, float] = {}
# Work that only the CPU run does, which the T4 skips. Chapter 8 loads a bfloat16 copy of the model on a CPU (native
# there) but not on a T4 (compute capability 7.5, no native bfloat16): its three part loads are taken off. The calls
# of that row are not, so the estimate stays on the high side.
CPU_ONLY_SECONDS: dict[str, float] = {
    "08_speed_and_memory": 3 * T4_SECONDS_PER_PART_LOAD
}
STATED = re.compile(r"this chapter takes about (\d+) minutes?")
STATEMENT = (
    "On Colab's free T4 GPU with SD v1.5, this chapter takes about {minutes} minutes (an estimate from the "
    "work it counts:\nsee the README's GPU budget)."
)


def counted(path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """The chapter's counts, from this run's nbmake execution or, where there was none, from running it here."""
    file = BUDGET_DIR / f"{path.stem}.json"
    if not file.exists() or file.stat().st_mtime < path.stat().st_mtime:
        for name, value in kernel_environment(path).items():
            monkeypatch.setenv(name, value)  # the kernel inherits them
        notebook = nbformat.read(path, as_version=4)
        NotebookClient(
            notebook, timeout=600, resources={"metadata": {"path": str(path.parent)}}
        ).execute()
    return json.loads(file.read_text())


def estimated_minutes(path: Path, monkeypatch: pytest.MonkeyPatch) -> float:
    return (
        t4_seconds(counted(path, monkeypatch))
        + GPU_ONLY_SECONDS.get(path.stem, 0.0)
        - CPU_ONLY_SECONDS.get(path.stem, 0.0)
    ) / 60


@pytest.mark.parametrize("path", chapters(), ids=lambda path: path.name)
def test_every_chapter_fits_a_t4_and_states_its_time(path, monkeypatch):
    minutes = estimated_minutes(path, monkeypatch)
    assert minutes < LIMIT_MINUTES, (
        f"{path.name}: about {minutes:.1f} minutes on a T4, over {LIMIT_MINUTES}"
    )
    opening = nbformat.read(path, as_version=4).cells[0].source
    stated = STATED.search(opening)
    assert stated, (
        f'{path.name} does not say "this chapter takes about N minutes" (on a T4) in its first cell'
    )
    assert abs(int(stated.group(1)) - minutes) <= 1, (
        f"{path.name} says about {stated.group(1)} minutes, but its counts give {minutes:.1f}: "
        "run `python tests/test_gpu_budget.py`"
    )


def state_the_estimate(path: Path, minutes: float) -> None:
    """Write (or rewrite) the chapter's statement of its T4 time as the last paragraph of its first cell."""
    notebook = nbformat.read(path, as_version=4)
    opening = notebook.cells[0]
    paragraphs = [
        p
        for p in opening.source.split("\n\n")
        if not STATED.search(p.replace("\n", " "))
    ]
    opening.source = "\n\n".join(
        [*paragraphs, STATEMENT.format(minutes=max(1, round(minutes)))]
    )
    nbformat.write(notebook, path)


if __name__ == "__main__":
    with pytest.MonkeyPatch.context() as patch:
        for chapter in chapters():
            estimate = estimated_minutes(chapter, patch)
            state_the_estimate(chapter, estimate)
            print(f"{chapter.name}: about {estimate:.1f} minutes on a T4")
