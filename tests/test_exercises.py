"""The instructor kit: the student edition and the grader, on a small sample notebook and on the whole book.

The whole-book round trip executes every chapter twice (the untouched student edition and the one with the solutions
pasted back), two notebooks at a time; the reference book's own run is the site build's (see ``built_book.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from built_book import ROOT, chapters, executed_notebooks
from helpers.exercises import main, student_notebook, write_student_edition
from helpers.grading import (
    ERROR,
    FAIL,
    NOT_DONE,
    PASS,
    Result,
    Submission,
    check_verdicts,
    grade,
    reference_exercises,
)
from helpers.markup import CHECK_TAG, SOLUTION_TAG, bound_names, exercise_cells, tags

BOOK_NOTEBOOKS = chapters()


@pytest.fixture(autouse=True, scope="module")
def kernels_import_this_checkout():
    """Kernels started by the grader import ``helpers`` from this checkout, wherever the notebook lies."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
        yield


def exercise(label: str, solutions: list[str], check: str) -> list[NotebookNode]:
    """The cells of one exercise in the book's markup."""
    return [
        new_markdown_cell(f"```{{exercise}} Sample {label}\n:label: {label}\n\nBind the answer.\n```"),
        new_markdown_cell(f"```{{solution-start}} {label}\n:class: dropdown\n```"),
        *(new_code_cell(source, metadata={"tags": [SOLUTION_TAG]}) for source in solutions),
        new_markdown_cell("```{solution-end}\n```"),
        new_code_cell(check, metadata={"tags": [CHECK_TAG]}),
    ]


SAMPLE_CHECKS = '''from helpers.checks import expect, run_check

def check_total(total):
    run_check("ex-total", total, lambda answer: expect(answer == 5, f"expected 5, got {answer}"))

def check_square(square):
    run_check("ex-square", square, lambda f: expect(f(4) == 16, f"square(4) should be 16, got {f(4)}"))

def check_range(low, high):
    answer = ... if ... in (low, high) else (low, high)
    run_check("ex-range", answer, lambda pair: expect(pair == (1, 9), f"got {pair}"))
'''


def sample_notebook() -> NotebookNode:
    """A reference notebook in the book's markup with three exercises (one answered by two solution cells)."""
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [
        new_markdown_cell("# Sample\n\nA story cell, then the exercises."),
        new_code_cell(SAMPLE_CHECKS),
        new_markdown_cell("## Exercises"),
        *exercise("ex-total", ["total = 2 + 3"], "check_total(total)"),
        *exercise("ex-square", ["%%time\ndef square(x: int) -> int:\n    return x * x"], "check_square(square)"),
        *exercise("ex-range", ["low = 1", "for high in range(10):\n    pass"], "check_range(low, high)"),
    ]
    return nb


def paste_solutions(student: NotebookNode, reference: NotebookNode) -> NotebookNode:
    """The student edition with each "your code here" cell replaced by the reference's solution cell."""
    solutions = iter([cell for cell in reference.cells if SOLUTION_TAG in tags(cell)])
    pasted = nbformat.from_dict(student)
    pasted.cells = [next(solutions) if SOLUTION_TAG in tags(cell) else cell for cell in pasted.cells]
    return pasted


def with_solutions(nb: NotebookNode, sources: list[str]) -> NotebookNode:
    """A copy of ``nb`` whose solution cells hold ``sources``, in order."""
    changed = nbformat.from_dict(nb)
    for cell, source in zip([c for c in changed.cells if SOLUTION_TAG in tags(c)], sources, strict=True):
        cell.source = source
    return changed


def statuses(results: list[Result], notebook: Path) -> dict[str, tuple[str, str]]:
    """label -> (status, message) for one notebook's results."""
    return {result.label: (result.status, result.message) for result in results if result.notebook == str(notebook)}


def labels_of(nb: NotebookNode) -> list[str]:
    """The exercise labels of a notebook, in order."""
    return list(dict.fromkeys(label for _, label, cell in exercise_cells(nb) if CHECK_TAG in tags(cell)))


# What the student edition binds ----------------------------------------------------------------------------------


def test_bound_names_finds_every_top_level_binding_but_imports():
    source = """import torch
from math import pi as PI
a, (b, *rest) = 1, (2, 3)
c: int = 4
d += 1
x[0] = 5
obj.attr = 6
for i in range(3):
    inner = i
with open("f") as handle:
    pass
if a:
    e = 7
squares = [k * k for k in range(3)]
@decorator
def f(u, v=2, *args, **kwargs):
    local = 8
class Model:
    field = 9
"""
    names = bound_names(source)
    assert list(names) == ["a", "b", "rest", "c", "d", "i", "inner", "handle", "e", "squares", "f", "Model"]
    assert names["f"] == "a function: def f(u, v=2, *args, **kwargs): ..."
    assert names["a"] is None


def test_bound_names_reads_cells_with_ipython_magics():
    assert list(bound_names("%%time\nresult = 1\n!echo hi\n%matplotlib inline")) == ["result"]


def test_student_notebook_replaces_solutions_and_keeps_the_checks():
    reference = sample_notebook()
    student = student_notebook(reference)
    stubs = [cell.source for cell in student.cells if SOLUTION_TAG in tags(cell)]
    assert len(stubs) == 4 and all(stub.startswith("# YOUR CODE HERE (exercise ex-") for stub in stubs)
    assert stubs[0].endswith("\ntotal = ...")
    assert "# `square` should be a function: def square(x: int): ...\nsquare = ..." in stubs[1]
    assert stubs[2].endswith("\nlow = ...") and stubs[3].endswith("\nhigh = ...")
    checks = [cell.source for cell in student.cells if CHECK_TAG in tags(cell)]
    assert checks == [cell.source for cell in reference.cells if CHECK_TAG in tags(cell)]
    markdown = "\n".join(cell.source for cell in student.cells if cell.cell_type == "markdown")
    assert "{solution-start}" not in markdown and "{solution-end}" not in markdown
    assert markdown.count("**Your answer to `ex-") == 3 and markdown.count("{exercise}") == 3
    assert "x * x" not in "\n".join(cell.source for cell in student.cells)
    assert reference.cells[5].source == "total = 2 + 3"  # the reference itself is left as it was


def test_the_book_is_marked_up_for_grading():
    """Every chapter has at least three exercises, each with a solution and a check, and a stub for each solution."""
    assert BOOK_NOTEBOOKS, "no notebooks in book/"
    for path in BOOK_NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        labels = labels_of(nb)
        assert len(labels) >= 3, f"{path.name}: {labels}"
        solved = {label for _, label, cell in exercise_cells(nb) if SOLUTION_TAG in tags(cell)}
        assert solved == set(labels), f"{path.name}: exercises without a solution cell"
        for _, label, cell in exercise_cells(student_notebook(nb)):
            if SOLUTION_TAG in tags(cell):
                assert " = ..." in cell.source, f"{path.name} {label}: the solution binds no name"


# Grading: the sample, executed -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_grades(tmp_path_factory) -> tuple[int, str, dict[str, Path]]:
    """Grade four editions of the sample in one run of the command line: exit status, report, paths."""
    folder = tmp_path_factory.mktemp("sample")
    reference = sample_notebook()
    student = student_notebook(reference)
    editions = {
        "reference": reference,
        "student": student,
        "pasted": paste_solutions(student, reference),
        "wrong": with_solutions(reference, ["total = 4", "def square(x):\n    return x / 0", "low = 1", "high = 8"]),
        "crashed": with_solutions(reference, ["total = 5", "square = 1 / 0", "low, high = 1", "high = 9"]),
    }
    editions["crashed"].cells.insert(2, new_code_cell("undefined_name"))
    paths = {name: folder / f"{name}.ipynb" for name in editions}
    for name, nb in editions.items():
        nbformat.write(nb, paths[name])
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        status, printed = run_main(["grade", str(folder), "--jobs", "2", "--timeout", "300"])
    return status, printed, paths


def run_main(argv: list[str]) -> tuple[int, str]:
    """``python -m helpers.exercises`` in this process: exit status and what it printed."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main(argv)
    return status, buffer.getvalue()


def parse_report(printed: str) -> list[Result]:
    """Results back from the printed grade sheet (its format is what instructors read)."""
    results, notebook = [], ""
    for line in printed.splitlines():
        if not line.startswith(" ") and not line.startswith("TOTAL"):
            notebook = line.rsplit(":", 1)[0]
        elif line.startswith("  "):
            status = next(s for s in (NOT_DONE, PASS, FAIL, ERROR) if line[2:].startswith(s))
            label, _, message = line[2 + len(status):].strip().partition("  ")
            results.append(Result(notebook, label, status, message.strip()))
    return results


def test_grading_the_sample_reports_each_exercise(sample_grades):
    status, printed, paths = sample_grades
    results = parse_report(printed)
    assert status == 1
    assert statuses(results, paths["reference"]) == {label: (PASS, "") for label in ("ex-total", "ex-square", "ex-range")}
    assert statuses(results, paths["pasted"]) == statuses(results, paths["reference"])
    assert statuses(results, paths["student"]) == {label: (NOT_DONE, "") for label in ("ex-total", "ex-square", "ex-range")}
    assert statuses(results, paths["wrong"]) == {
        "ex-total": (FAIL, "expected 5, got 4"),
        "ex-square": (FAIL, "ZeroDivisionError: division by zero"),
        "ex-range": (FAIL, "got (1, 8)"),
    }
    crashed = statuses(results, paths["crashed"])
    assert crashed["ex-total"] == (PASS, "")
    assert crashed["ex-square"] == (FAIL, "ZeroDivisionError: division by zero")
    assert crashed["ex-range"][0] == FAIL and crashed["ex-range"][1].startswith("TypeError: cannot unpack")
    assert crashed["cell 2"] == (ERROR, "NameError: name 'undefined_name' is not defined")
    assert printed.splitlines()[-1] == "TOTAL: 7/15 exercises pass, 5 fail, 3 not done, 1 errors outside exercises"
    assert f"{paths['reference']}: 3/3 pass" in printed.splitlines()


def test_grade_exits_zero_only_when_everything_passes(sample_grades, tmp_path):
    _, _, paths = sample_grades
    assert run_main(["grade", str(paths["reference"])]) == (0, f"{paths['reference']}: 3/3 pass\n"
                                                                "  PASS      ex-total\n  PASS      ex-square\n"
                                                                "  PASS      ex-range\nTOTAL: 3/3 exercises pass, "
                                                                "0 fail, 0 not done, 0 errors outside exercises\n")


def test_student_command_writes_one_notebook_per_chapter(tmp_path):
    status, printed = run_main(["student", "-o", str(tmp_path)])  # book/ by default
    assert status == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == [path.name for path in BOOK_NOTEBOOKS]
    assert printed.splitlines() == [f"wrote {tmp_path / path.name}" for path in BOOK_NOTEBOOKS]


# Grading: the whole book -----------------------------------------------------------------------------------------


def test_the_reference_book_passes_every_check():
    """The chapters as the site build executed them (no second run): every exercise passes, no cell failed."""
    executed = executed_notebooks()
    assert list(executed) == [path.name for path in BOOK_NOTEBOOKS]
    for name, nb in executed.items():
        results = grade_notebook(nb, name)
        assert {r.label: r.status for r in results} == {label: PASS for label in labels_of(nb)}, results
        shown = [out for cell in nb.cells if CHECK_TAG in tags(cell) for out in cell.outputs
                 if out.output_type != "stream"]
        assert shown == [], f"{name}: a check cell shows more than its printed verdict"


@pytest.fixture(scope="module")
def book_round_trip(tmp_path_factory) -> dict[str, list[Result]]:
    """The untouched student edition and the one with the solutions pasted back, graded in one run."""
    student_dir, pasted_dir = tmp_path_factory.mktemp("student"), tmp_path_factory.mktemp("pasted")
    students = write_student_edition(BOOK_NOTEBOOKS, student_dir)
    for reference, student in zip(BOOK_NOTEBOOKS, students):
        pasted = paste_solutions(nbformat.read(student, as_version=4), nbformat.read(reference, as_version=4))
        nbformat.write(pasted, pasted_dir / reference.name)
    results = grade(students + sorted(pasted_dir.glob("*.ipynb")), jobs=2, timeout=300)
    return {"student": [r for r in results if r.notebook.startswith(str(student_dir))],
            "pasted": [r for r in results if r.notebook.startswith(str(pasted_dir))]}


def every_exercise_graded(status: str) -> dict[tuple[str, str], str]:
    """(notebook name, label) -> ``status`` for every exercise of the book, and nothing else (no crashed cell)."""
    return {(path.name, label): status for path in BOOK_NOTEBOOKS
            for label in labels_of(nbformat.read(path, as_version=4))}


def graded(results: list[Result]) -> dict[tuple[str, str], str]:
    return {(Path(r.notebook).name, r.label): r.status for r in results}


def test_the_untouched_student_edition_runs_and_grades_zero(book_round_trip):
    results = book_round_trip["student"]
    assert graded(results) == every_exercise_graded(NOT_DONE), [r for r in results if r.status != NOT_DONE]


def test_the_student_edition_with_the_solutions_pasted_back_grades_full_marks(book_round_trip):
    results = book_round_trip["pasted"]
    assert graded(results) == every_exercise_graded(PASS), [r for r in results if r.status != PASS]
