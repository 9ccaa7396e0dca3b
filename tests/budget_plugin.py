"""A pytest plugin for the whole repository (pyproject.toml loads it): the GPU-world budget that the chapters
count while nbmake runs them.

Each chapter's kernel gets ``SD_BOOK_BUDGET_FILE`` (see helpers/budget.py) and writes its counts to
``_build/gpu_budget/<chapter>.json``; tests/test_gpu_budget.py, moved to the end of the run, reads them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

BUDGET_DIR = Path(__file__).resolve().parents[1] / "_build" / "gpu_budget"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The budget's tests last, after the chapters have written this run's counts."""
    items.sort(key=lambda item: item.path.name == "test_gpu_budget.py")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A chapter run by nbmake counts its work into its own file (its kernel inherits this environment)."""
    if item.path.suffix == ".ipynb":
        BUDGET_DIR.mkdir(parents=True, exist_ok=True)
        os.environ["SD_BOOK_BUDGET_FILE"] = str(BUDGET_DIR / f"{item.path.stem}.json")


def pytest_runtest_teardown(item: pytest.Item) -> None:
    os.environ.pop("SD_BOOK_BUDGET_FILE", None)
