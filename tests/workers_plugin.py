"""A pytest plugin (pyproject.toml loads it): how ``python -m pytest`` shares two CPU cores between two pytest-xdist
workers (``-n 2 --dist loadgroup`` in pyproject.toml).

- The chapters' run and the tests that read it (the built site, the GPU budget, the reference book's checks) form one
  group, ``BOOK_RUN``, which one worker runs in collection order: the chapters first. Those tests mark themselves; the
  chapters, which nbmake collects, are marked here.
- Every other test file is a group of its own, so that its module fixtures (a graded class of students, a short
  training run) are built once, not once in each worker; and the tests that use a session fixture too costly to
  build twice share one group.
- Each worker, and each chapter's kernel it starts, computes on one thread: two processes of one thread each get
  more done on two cores than two processes of two threads that take turns.
"""

from __future__ import annotations

import os

import pytest
import torch
from built_book import BOOK_RUN

COSTLY_FIXTURES = (
    "sd15_pipe",
)  # an SD-sized pipeline: about 1 B parameters to initialise


def pytest_configure(config: pytest.Config) -> None:
    if "PYTEST_XDIST_WORKER" in os.environ:
        # each kernel's torch reads it when it starts
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


def group(item: pytest.Item) -> str:
    """The worker group of a test that does not name its own."""
    if item.path.suffix == ".ipynb":
        return BOOK_RUN
    costly = [
        name for name in COSTLY_FIXTURES if name in getattr(item, "fixturenames", ())
    ]
    return costly[0] if costly else item.path.name


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups from the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(group(item)))
