"""A tiny reference notebook in the book's exercise markup, and the editions of it that students hand in, for the
tests of the student edition and the grader: it runs in seconds where a chapter takes a minute."""

from __future__ import annotations

import contextlib
import io

import nbformat
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from helpers.exercises import main
from helpers.markup import CHECK_TAG, SOLUTION_TAG, tags

LABELS = ("ex-total", "ex-square", "ex-range")
SAMPLE_CHECKS = """from helpers.checks import expect, run_check

def check_total(total):
    run_check("ex-total", total, lambda answer: expect(answer == 5, f"expected 5, got {answer}"))

def check_square(square):
    run_check("ex-square", square, lambda f: expect(f(4) == 16, f"square(4) should be 16, got {f(4)}"))

def check_range(low, high):
    answer = ... if ... in (low, high) else (low, high)
    run_check("ex-range", answer, lambda pair: expect(pair == (1, 9), f"got {pair}"))
"""


def exercise(label: str, solutions: list[str], check: str) -> list[NotebookNode]:
    """The cells of one exercise in the book's markup."""
    return [
        new_markdown_cell(
            f"```{{exercise}} Sample {label}\n:label: {label}\n\nBind the answer.\n```"
        ),
        new_markdown_cell(f"```{{solution-start}} {label}\n:class: dropdown\n```"),
        *(
            new_code_cell(source, metadata={"tags": [SOLUTION_TAG]})
            for source in solutions
        ),
        new_markdown_cell("```{solution-end}\n```"),
        new_code_cell(check, metadata={"tags": [CHECK_TAG]}),
    ]


def sample_notebook() -> NotebookNode:
    """A reference notebook with three exercises (one answered by two solution cells, one by a function)."""
    nb = new_notebook(
        metadata={
            "kernelspec": {
                "name": "python3",
                "display_name": "Python 3",
                "language": "python",
            }
        }
    )
    nb.cells = [
        new_markdown_cell("# Sample\n\nA story cell, then the exercises."),
        new_code_cell(SAMPLE_CHECKS),
        new_markdown_cell("## Exercises"),
        *exercise("ex-total", ["total = 2 + 3"], "check_total(total)"),
        *exercise(
            "ex-square",
            ["%%time\ndef square(x: int) -> int:\n    return x * x"],
            "check_square(square)",
        ),
        *exercise(
            "ex-range",
            ["low = 1", "for high in range(10):\n    pass"],
            "check_range(low, high)",
        ),
    ]
    return nb


def paste_solutions(student: NotebookNode, reference: NotebookNode) -> NotebookNode:
    """The student edition with each "your code here" cell replaced by the reference's solution cell."""
    solutions = iter([cell for cell in reference.cells if SOLUTION_TAG in tags(cell)])
    pasted = nbformat.from_dict(student)
    pasted.cells = [
        next(solutions) if SOLUTION_TAG in tags(cell) else cell for cell in pasted.cells
    ]
    return pasted


def with_solutions(nb: NotebookNode, sources: list[str]) -> NotebookNode:
    """A copy of ``nb`` whose solution cells hold ``sources``, in order."""
    changed = nbformat.from_dict(nb)
    for cell, source in zip(
        [c for c in changed.cells if SOLUTION_TAG in tags(c)], sources, strict=True
    ):
        cell.source = source
    return changed


def with_checks(nb: NotebookNode, sources: list[str | None]) -> NotebookNode:
    """A copy of ``nb`` whose check cells hold ``sources``, in order; ``None`` deletes that check cell."""
    changed = nbformat.from_dict(nb)
    checks = iter(sources)
    cells = []
    for cell in changed.cells:
        source = next(checks) if CHECK_TAG in tags(cell) else cell.source
        if source is not None:
            cell.source = source
            cells.append(cell)
    changed.cells = cells
    return changed


def run_main(argv: list[str]) -> tuple[int, str]:
    """``python -m helpers.exercises`` in this process: exit status and what it printed."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main(argv)
    return status, buffer.getvalue()
