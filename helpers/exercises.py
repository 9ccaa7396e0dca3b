"""Hand out the book's exercises and grade them.

    python -m helpers.exercises student -o student/            # a student edition of every book/*.ipynb
    python -m helpers.exercises grade student/ --jobs 2         # execute and grade every notebook in a folder
    python -m helpers.exercises grade student/02_vae.ipynb      # ... or one notebook

The markup it reads (see ``book/instructors.md``): an ``{exercise}`` markdown cell with a ``:label:``, a
``{solution-start}`` gate cell, code cells tagged ``solution``, a ``{solution-end}`` gate cell, and a code cell tagged
``check`` that calls a check from ``helpers.checks.chNN``. A check prints ``[label] PASS`` or ``[label] NOT DONE``, or
raises ``ExerciseFailed``; grading reads exactly that from the executed notebook.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import nbformat
from IPython.core.inputtransformer2 import TransformerManager
from nbclient import NotebookClient
from nbformat import NotebookNode

BOOK_DIR = Path(__file__).resolve().parent.parent / "book"
SOLUTION_TAG, CHECK_TAG = "solution", "check"
MODEL_ANSWER_TAG = "model-answer"  # a markdown cell inside a solution that answers an open question in words
EXERCISE_RE = re.compile(r"^(?:`{3,}|:{3,})\{exercise(?:-start)?\}.*?^:label:\s*(\S+)", re.M | re.S)
SOLUTION_START_RE = re.compile(r"^(?:`{3,}|:{3,})\{solution-start\}\s*(\S+)", re.M)
SOLUTION_END_RE = re.compile(r"^(?:`{3,}|:{3,})\{solution-end\}", re.M)
FAILED_ERRORS = ("ExerciseFailed", "AssertionError")  # a wrong answer, as opposed to code that crashed
PASS, FAIL, NOT_DONE, ERROR = "PASS", "FAIL", "NOT DONE", "ERROR"


def tags(cell: NotebookNode) -> list[str]:
    """The cell's tags (``metadata.tags``), empty when it has none."""
    return list(cell.get("metadata", {}).get("tags", []))


def exercise_cells(nb: NotebookNode) -> Iterator[tuple[int, str | None, NotebookNode]]:
    """Every cell with its index and the label of the exercise it belongs to (``None`` before the first one)."""
    label = None
    for index, cell in enumerate(nb.cells):
        found = EXERCISE_RE.search(cell.source) if cell.cell_type == "markdown" else None
        label = found.group(1) if found else label
        yield index, label, cell


# The student edition ---------------------------------------------------------------------------------------------


class _TopLevelNames(ast.NodeVisitor):
    """Collects the names a cell binds in the notebook's namespace; function bodies and comprehensions are their own
    scopes, and imports are left out (a stub ``torch = ...`` would hide the module that later cells need)."""

    def __init__(self) -> None:
        self.names: dict[str, str | None] = {}  # name -> a hint shown beside its stub

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store):
            self.names.setdefault(node.id, None)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.names[node.name] = f"a function: def {node.name}({ast.unparse(node.args)}): ..."

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.names[node.name] = f"a class: class {node.name}: ..."

    def visit_comprehension(self, node: ast.comprehension) -> None:
        """Comprehension variables live inside the comprehension, not in the notebook."""

    visit_AsyncFunctionDef = visit_FunctionDef


def bound_names(source: str) -> dict[str, str | None]:
    """Top-level names a code cell binds (assignments, ``for``/``with`` targets, defs, classes), each with a hint."""
    if source.lstrip().startswith("%%"):  # a cell magic (%%time, %%capture) runs the rest of the cell as Python
        source = source.lstrip().partition("\n")[2]
    visitor = _TopLevelNames()
    visitor.visit(ast.parse(TransformerManager().transform_cell(source)))  # line magics become plain calls
    return visitor.names


def stub_source(solution: str, label: str | None) -> str:
    """The "your code here" cell that stands for one solution cell: every name it bound set to ``...``."""
    lines = [f"# YOUR CODE HERE (exercise {label}): replace each `...` with your answer, then run the check below."]
    for name, hint in bound_names(solution).items():
        lines += [f"# `{name}` should be {hint}"] if hint else []
        lines.append(f"{name} = ...")
    return "\n".join(lines)


def student_cell(cell: NotebookNode, label: str | None) -> NotebookNode | None:
    """The student edition's version of one cell: solutions stubbed, their gates turned into a note or dropped."""
    if cell.cell_type == "code" and SOLUTION_TAG in tags(cell):
        return nbformat.v4.new_code_cell(stub_source(cell.source, label), metadata={"tags": [SOLUTION_TAG]})
    if cell.cell_type == "markdown" and (SOLUTION_END_RE.search(cell.source) or MODEL_ANSWER_TAG in tags(cell)):
        return None
    if cell.cell_type == "markdown" and SOLUTION_START_RE.search(cell.source):
        return nbformat.v4.new_markdown_cell(
            f"**Your answer to `{label}`** goes in the `YOUR CODE HERE` cell below; the check cell after it says "
            "whether it is right (`PASS`), still missing (`NOT DONE`), or wrong and why.")
    return cell


def student_notebook(nb: NotebookNode) -> NotebookNode:
    """A copy of a book notebook with every solution replaced by a stub and no outputs."""
    student = nbformat.from_dict(nb)
    cells = (student_cell(cell, label) for _, label, cell in exercise_cells(student))
    student.cells = [cell for cell in cells if cell is not None]
    for cell in student.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return student


def write_student_edition(notebooks: Sequence[Path], out_dir: Path) -> list[Path]:
    """Write the student edition of each notebook into ``out_dir``; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        target = out_dir / path.name
        nbformat.write(student_notebook(nbformat.read(path, as_version=4)), target)
        written.append(target)
    return written


# Grading ---------------------------------------------------------------------------------------------------------


@dataclass
class Result:
    """One graded exercise (or one crashed cell outside the exercises) of one notebook."""

    notebook: str
    label: str
    status: str
    message: str = ""


def execute(path: Path, timeout: int) -> tuple[NotebookNode, str]:
    """Run every cell of the notebook in its own folder; returns it with outputs and a kernel-level error, if any."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            interrupt_on_timeout=True, resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except Exception as error:  # a dead kernel or a failed start: grade what ran, and say why the rest did not
        return nb, f"{type(error).__name__}: {error}"
    return nb, ""


def cell_error(cell: NotebookNode) -> NotebookNode | None:
    """The error output of an executed code cell, if it raised."""
    return next((out for out in cell.get("outputs", []) if out.output_type == "error"), None)


def cell_outcome(cell: NotebookNode, label: str) -> tuple[str, str]:
    """(status, message) of one executed solution or check cell of exercise ``label``."""
    error = cell_error(cell)
    if error is not None:
        wrong_answer = error.ename in FAILED_ERRORS
        return FAIL, error.evalue if wrong_answer else f"{error.ename}: {error.evalue}"
    if CHECK_TAG not in tags(cell):
        return PASS, ""  # a solution cell that ran; the check says whether it is right
    printed = "".join(out.get("text", "") for out in cell.outputs if out.output_type == "stream")
    found = re.search(rf"^\[{re.escape(label)}\] (PASS|NOT DONE)", printed, re.M)
    return (found.group(1), "") if found else (FAIL, f"the check printed no result for [{label}]")


def grade_notebook(nb: NotebookNode, name: str) -> list[Result]:
    """Grade an executed notebook: one result per exercise, plus one per crashed cell outside the exercises."""
    outcomes: dict[str, list[tuple[str, str]]] = {}
    errors = []
    for index, label, cell in exercise_cells(nb):
        graded = label is not None and {SOLUTION_TAG, CHECK_TAG} & set(tags(cell))
        if cell.cell_type == "code" and graded:
            outcomes.setdefault(label, []).append(cell_outcome(cell, label))
        elif cell.cell_type == "code" and (error := cell_error(cell)) is not None:
            errors.append(Result(name, f"cell {index}", ERROR, f"{error.ename}: {error.evalue}"))
    results = [Result(name, label, *worst(found)) for label, found in outcomes.items()]
    return results + errors


def worst(outcomes: list[tuple[str, str]]) -> tuple[str, str]:
    """An exercise's grade from its cells' outcomes: the first failure, else not done, else pass."""
    for status in (FAIL, NOT_DONE, PASS):
        for outcome in outcomes:
            if outcome[0] == status:
                return outcome
    return FAIL, "no check cell tagged `check`"


def grade_path(path: Path, timeout: int = 600) -> list[Result]:
    """Execute one notebook and grade it."""
    nb, kernel_error = execute(path, timeout)
    results = grade_notebook(nb, str(path))
    return results + ([Result(str(path), "kernel", ERROR, kernel_error)] if kernel_error else [])


def _share_cores(jobs: int) -> None:
    """Give each of ``jobs`` kernels its share of the cores: PyTorch in every kernel would otherwise take them all."""
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))


def grade(paths: Sequence[Path], jobs: int = 1, timeout: int = 600) -> list[Result]:
    """Execute and grade the notebooks, ``jobs`` at a time, in the order given."""
    if jobs <= 1:
        return [result for path in paths for result in grade_path(path, timeout)]
    with ProcessPoolExecutor(max_workers=jobs, initializer=_share_cores, initargs=(jobs,)) as pool:
        per_notebook = pool.map(grade_path, paths, [timeout] * len(paths))
        return [result for results in per_notebook for result in results]


def report(results: Sequence[Result]) -> str:
    """The grade sheet: per notebook, one line per exercise (status, label, message), then a total."""
    lines = []
    for notebook in dict.fromkeys(result.notebook for result in results):
        mine = [result for result in results if result.notebook == notebook]
        lines.append(f"{notebook}: {sum(r.status == PASS for r in mine)}/{sum(r.status != ERROR for r in mine)} pass")
        lines += [f"  {r.status:<8}  {r.label}" + (f"  {r.message}" if r.message else "") for r in mine]
    counts = {status: sum(result.status == status for result in results) for status in (PASS, FAIL, NOT_DONE, ERROR)}
    exercises = counts[PASS] + counts[FAIL] + counts[NOT_DONE]
    lines.append(f"TOTAL: {counts[PASS]}/{exercises} exercises pass, {counts[FAIL]} fail, {counts[NOT_DONE]} not done, "
                 f"{counts[ERROR]} errors outside exercises")
    return "\n".join(lines)


# Command line ----------------------------------------------------------------------------------------------------


def notebooks_in(paths: Sequence[Path]) -> list[Path]:
    """The notebooks named, with each folder standing for the ``*.ipynb`` files inside it."""
    found = [notebook for path in paths for notebook in (sorted(path.glob("*.ipynb")) if path.is_dir() else [path])]
    if not found:
        raise SystemExit(f"no notebooks in {', '.join(map(str, paths))}")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.exercises", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    student = sub.add_parser("student", help="write a student edition: solutions replaced by 'your code here' cells")
    student.add_argument("notebooks", nargs="*", type=Path, default=[BOOK_DIR], help="notebooks or folders (book/)")
    student.add_argument("-o", "--out", type=Path, required=True, help="folder to write the student notebooks to")
    grader = sub.add_parser("grade", help="execute notebooks and grade their exercises")
    grader.add_argument("notebooks", nargs="+", type=Path, help="notebooks or folders of notebooks")
    grader.add_argument("--jobs", type=int, default=1, help="notebooks executed at once (default 1)")
    grader.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell (default 600)")
    args = parser.parse_args(argv)
    if args.command == "student":
        for path in write_student_edition(notebooks_in(args.notebooks), args.out):
            print(f"wrote {path}")
        return 0
    results = grade(notebooks_in(args.notebooks), args.jobs, args.timeout)
    print(report(results))
    return 0 if results and all(result.status == PASS for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
