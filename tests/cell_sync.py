"""Functions a chapter writes in its own cells and ``helpers`` keeps for later chapters: d2l's ``#@save``, checked.

A chapter defines a function in a code cell, where a learner can edit it and re-run the chapter; later chapters
import the one copy in ``helpers``. The cell names the module that holds the copy with a tag, ``mirror:<module>``
(for example ``mirror:helpers.schedulers``), and every top-level function and class it defines must be that
module's, character for character. ``tests/test_cell_sync.py`` checks every tagged cell of the book, so a chapter
registers a cell by tagging it. ``run_until`` executes a chapter up to one cell, with a cell edited, for the tests
that prove an edit there breaks the chapter's own equality check.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat
from built_book import ROOT
from nbclient import NotebookClient
from nbformat import NotebookNode

MIRROR_TAG = "mirror:"


@dataclass(frozen=True)
class MirroredCell:
    """One tagged code cell: where it is, the module that keeps its functions, and its source."""

    notebook: Path
    index: int
    module: str
    source: str

    def __str__(self) -> str:
        return f"{self.notebook.name} cell {self.index} ({self.module})"


def mirrored_cells(notebook: Path) -> list[MirroredCell]:
    """The code cells of ``notebook`` tagged ``mirror:<module>``, in order."""
    nb = nbformat.read(notebook, as_version=4)
    return [
        MirroredCell(notebook, index, tag[len(MIRROR_TAG) :], cell.source)
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for tag in cell.metadata.get("tags", [])
        if tag.startswith(MIRROR_TAG)
    ]


def definitions(source: str) -> dict[str, str]:
    """Top-level ``def`` and ``class`` name -> its source text, decorators included, exactly as written."""
    lines = source.splitlines()
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min(
                [node.lineno] + [decorator.lineno for decorator in node.decorator_list]
            )
            found[node.name] = "\n".join(lines[first - 1 : node.end_lineno])
    return found


def drift(cell: MirroredCell) -> list[str]:
    """What differs between the cell's definitions and its module's (empty when they are identical)."""
    module = importlib.import_module(cell.module)
    kept = definitions(Path(module.__file__).read_text())
    written = definitions(cell.source)
    if not written:
        return [f"{cell} defines no function or class"]
    return [
        f"{cell}: {name} is missing from {cell.module}"
        if name not in kept
        else f"{cell}: {name} differs from {cell.module}.{name}"
        for name, text in written.items()
        if kept.get(name) != text
    ]


def run_until(
    notebook: Path,
    is_last: Callable[[NotebookNode], bool],
    edits: dict[int, str] | None = None,
    timeout: int = 600,
) -> NotebookNode:
    """Execute ``notebook`` from the top through its first cell for which ``is_last`` holds, in the book's folder.

    ``edits`` replaces the source of cells by index first, as a learner's edit would. Raises nbclient's
    ``CellExecutionError`` where a cell fails.
    """
    nb = nbformat.read(notebook, as_version=4)
    for index, source in (edits or {}).items():
        nb.cells[index].source = source
    last = next(index for index, cell in enumerate(nb.cells) if is_last(cell))
    nb.cells = nb.cells[: last + 1]
    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT / "book")}},
    ).execute()
    return nb
