"""A pytest plugin (pyproject.toml loads it): every chapter that nbmake runs and passes goes into Jupyter Book's
execution cache, so the site is built from those very runs and a test run executes the book once.

Jupyter Book (``execute_notebooks: cache`` in ``_config.yml``) takes a chapter's outputs from the cache when the
cached notebook has the same code and kernel; ``tests/built_book.py`` then builds the site without executing it again.
nbmake's item keeps the executed notebook to itself, so this plugin wraps the one method that returns it.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from built_book import CACHE
from jupyter_cache import get_cache
from jupyter_cache.base import CacheBundleIn
from nbformat import NotebookNode
from nbmake.nb_run import NotebookRun

run_and_return = NotebookRun.execute


def run_and_cache(run: NotebookRun):
    """nbmake's run of a chapter; a chapter that passed is cached for the site, as Jupyter Book caches its own."""
    start = time.perf_counter()
    result = run_and_return(run)
    if result.error is None:
        seconds = time.perf_counter() - start
        bundle = CacheBundleIn(
            with_outputs(run.filename, result.nb),
            str(run.filename),
            data={"execution_seconds": seconds},
        )
        get_cache(CACHE).cache_notebook_bundle(
            bundle, check_validity=False, overwrite=True
        )
    return result


def with_outputs(path: Path, executed: NotebookNode) -> NotebookNode:
    """The chapter as written, with the run's outputs: the cache matches cells by source and metadata, and the run
    adds its timings to each cell's metadata."""
    chapter = nbformat.read(path, as_version=4)
    for cell, run_cell in zip(chapter.cells, executed.cells, strict=True):
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = (
                run_cell.outputs,
                run_cell.execution_count,
            )
    return chapter


def pytest_configure(config: pytest.Config) -> None:
    NotebookRun.execute = run_and_cache


def pytest_unconfigure(config: pytest.Config) -> None:
    NotebookRun.execute = run_and_return
