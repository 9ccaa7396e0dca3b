"""The exercise markup of the book's notebooks, read by the student edition and the grader, and how the kit reads
notebook files.

The markup (see ``book/instructors.md``): an ``{exercise}`` markdown cell with a ``:label:``, a ``{solution-start}``
gate cell, code cells tagged ``solution``, a ``{solution-end}`` gate cell, and a code cell tagged ``check`` that calls
a check from ``helpers.checks.chNN``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import nbformat
from IPython.core.inputtransformer2 import TransformerManager
from nbformat import NotebookNode

SOLUTION_TAG, CHECK_TAG = "solution", "check"
EXERCISE_RE = re.compile(
    r"^(?:`{3,}|:{3,})\{exercise(?:-start)?\}.*?^:label:\s*(\S+)", re.M | re.S
)
SOLUTION_START_RE = re.compile(r"^(?:`{3,}|:{3,})\{solution-start\}\s*(\S+)", re.M)
SOLUTION_END_RE = re.compile(r"^(?:`{3,}|:{3,})\{solution-end\}", re.M)


def tags(cell: NotebookNode) -> list[str]:
    """The cell's tags (``metadata.tags``), empty when it has none."""
    return list(cell.get("metadata", {}).get("tags", []))


def exercise_cells(nb: NotebookNode) -> Iterator[tuple[int, str | None, NotebookNode]]:
    """Every cell with its index and the label of the exercise it belongs to (``None`` before the first one)."""
    label = None
    for index, cell in enumerate(nb.cells):
        found = (
            EXERCISE_RE.search(cell.source) if cell.cell_type == "markdown" else None
        )
        label = found.group(1) if found else label
        yield index, label, cell


class _TopLevelNames(ast.NodeVisitor):
    """Collects the names a cell binds in the notebook's namespace; function bodies and comprehensions are their own
    scopes, and imports are left out (a stub ``torch = ...`` would hide the module that later cells need)."""

    def __init__(self) -> None:
        self.names: dict[str, str | None] = {}  # name -> a hint shown beside its stub

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store):
            self.names.setdefault(node.id, None)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.names[node.name] = (
            f"a function: def {node.name}({ast.unparse(node.args)}): ..."
        )

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.names[node.name] = f"a class: class {node.name}: ..."

    def visit_comprehension(self, node: ast.comprehension) -> None:
        """Comprehension variables live inside the comprehension, not in the notebook."""

    visit_AsyncFunctionDef = visit_FunctionDef


def bound_names(source: str) -> dict[str, str | None]:
    """Top-level names a code cell binds (assignments, ``for``/``with`` targets, defs, classes), each with a hint."""
    if source.lstrip().startswith(
        "%%"
    ):  # a cell magic (%%time, %%capture) runs the rest of the cell as Python
        source = source.lstrip().partition("\n")[2]
    visitor = _TopLevelNames()
    visitor.visit(
        ast.parse(TransformerManager().transform_cell(source))
    )  # line magics become plain calls
    return visitor.names


# The kit's files -------------------------------------------------------------------------------------------------


class KitError(Exception):
    """A bad path or option: the message, one line in the course's words, is all the command prints."""


def read_notebook(path: Path) -> NotebookNode:
    """A notebook from disk, or a ``KitError`` that says why it cannot be read."""
    if not path.is_file():
        raise KitError(f"no notebook at {path}")
    try:
        return nbformat.read(path, as_version=4)
    except (
        Exception
    ) as error:  # not JSON, not a notebook, not readable: all one answer for the user
        raise KitError(
            f"cannot read {path} as a notebook ({type(error).__name__}): is it a .ipynb file?"
        ) from None


def notebooks_in(paths: Sequence[Path]) -> list[Path]:
    """The notebooks named, with each folder standing for the ``*.ipynb`` files inside it."""
    for path in paths:
        if not path.exists():
            raise KitError(f"no such notebook or folder: {path}")
        if path.is_file() and path.suffix != ".ipynb":
            raise KitError(
                f"{path} is not a notebook: name .ipynb files or folders that hold them"
            )
    found = [
        notebook
        for path in paths
        for notebook in (sorted(path.glob("*.ipynb")) if path.is_dir() else [path])
    ]
    if not found:
        raise KitError(f"no notebooks (*.ipynb) in {', '.join(map(str, paths))}")
    return found
