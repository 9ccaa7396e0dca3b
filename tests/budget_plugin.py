"""A pytest plugin for the whole repository (pyproject.toml loads it): the GPU-world budget that the chapters
count while nbmake runs them.

Each chapter's kernel gets ``SD_BOOK_BUDGET_FILE`` (see helpers/budget.py) and an IPython start-up file that starts
the tally, so ``import helpers`` stays free of side effects; the kernel writes its counts to
``_build/gpu_budget/<chapter>.json``, and tests/test_gpu_budget.py, moved to the end of the run, reads them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

BUDGET_DIR = Path(__file__).resolve().parents[1] / "_build" / "gpu_budget"
IPYTHON_DIR = (
    BUDGET_DIR / "ipython"
)  # the kernels' IPYTHONDIR: its start-up file starts the tally
START_UP = "from helpers.budget import start_if_asked\n\nstart_if_asked()\n"


def kernel_environment(chapter: Path) -> dict[str, str]:
    """What a chapter's kernel needs in its environment to count its work into its own file."""
    startup = IPYTHON_DIR / "profile_default" / "startup" / "00-budget.py"
    startup.parent.mkdir(parents=True, exist_ok=True)
    startup.write_text(START_UP)
    return {
        "SD_BOOK_BUDGET_FILE": str(BUDGET_DIR / f"{chapter.stem}.json"),
        "IPYTHONDIR": str(IPYTHON_DIR),
    }


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The budget's tests last, after the chapters have written this run's counts."""
    items.sort(key=lambda item: item.path.name == "test_gpu_budget.py")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A chapter run by nbmake counts its work into its own file (its kernel inherits this environment)."""
    if item.path.suffix == ".ipynb":
        os.environ.update(kernel_environment(item.path))


def pytest_runtest_teardown(item: pytest.Item) -> None:
    for name in ("SD_BOOK_BUDGET_FILE", "IPYTHONDIR"):
        os.environ.pop(name, None)
