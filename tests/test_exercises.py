"""The instructor kit's student edition, on a small sample notebook and on the whole book, and the grader on the
whole book (the grader's own behaviour, on a class of fake students, is in ``test_grading.py``).

The whole book's student edition runs once, untouched (nothing answered), and is graded; with the solutions pasted
back it is checked by source against the reference book, whose own run is nbmake's (fed to the site, see
``built_book.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest
from built_book import chapters, executed_notebooks
from nbformat import NotebookNode
from sample_book import paste_solutions, run_main, sample_notebook

from helpers.answers import screened
from helpers.exercises import (
    MODEL_ANSWER_TAG,
    main,
    student_notebook,
    write_student_edition,
)
from helpers.grading import (
    NOT_DONE,
    PASS,
    Result,
    Submission,
    check_verdicts,
    crashed_cells,
    grade,
    reference_exercises,
)
from helpers.markup import CHECK_TAG, SOLUTION_TAG, bound_names, exercise_cells, tags

BOOK_NOTEBOOKS = chapters()


def labels_of(nb: NotebookNode) -> list[str]:
    """The exercise labels of a notebook, in order."""
    return list(
        dict.fromkeys(
            label for _, label, cell in exercise_cells(nb) if CHECK_TAG in tags(cell)
        )
    )


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
    assert list(names) == [
        "a",
        "b",
        "rest",
        "c",
        "d",
        "i",
        "inner",
        "handle",
        "e",
        "squares",
        "f",
        "Model",
    ]
    assert names["f"] == "a function: def f(u, v=2, *args, **kwargs): ..."
    assert names["a"] is None


def test_bound_names_reads_cells_with_ipython_magics():
    assert list(bound_names("%%time\nresult = 1\n!echo hi\n%matplotlib inline")) == [
        "result"
    ]


def test_student_notebook_replaces_solutions_and_keeps_the_checks():
    reference = sample_notebook()
    student = student_notebook(reference)
    stubs = [cell.source for cell in student.cells if SOLUTION_TAG in tags(cell)]
    assert len(stubs) == 4 and all(
        stub.startswith("# YOUR CODE HERE (exercise ex-") for stub in stubs
    )
    assert stubs[0].endswith("\ntotal = ...")
    assert (
        "# `square` should be a function: def square(x: int): ...\nsquare = ..."
        in stubs[1]
    )
    assert stubs[2].endswith("\nlow = ...") and stubs[3].endswith("\nhigh = ...")
    checks = [cell.source for cell in student.cells if CHECK_TAG in tags(cell)]
    assert checks == [
        cell.source for cell in reference.cells if CHECK_TAG in tags(cell)
    ]
    markdown = "\n".join(
        cell.source for cell in student.cells if cell.cell_type == "markdown"
    )
    assert "{solution-start}" not in markdown and "{solution-end}" not in markdown
    assert (
        markdown.count("**Your answer to `ex-") == 3
        and markdown.count("{exercise}") == 3
    )
    assert "x * x" not in "\n".join(cell.source for cell in student.cells)
    assert (
        reference.cells[5].source == "total = 2 + 3"
    )  # the reference itself is left as it was


def test_student_notebook_leaves_out_model_answers():
    reference = sample_notebook()
    gate = next(
        i for i, cell in enumerate(reference.cells) if "{solution-end}" in cell.source
    )
    reference.cells.insert(
        gate,
        nbformat.v4.new_markdown_cell(
            "*A model answer.* Five.", metadata={"tags": [MODEL_ANSWER_TAG]}
        ),
    )
    student = student_notebook(reference)
    assert "model answer" not in "\n".join(cell.source for cell in student.cells)
    assert len(student.cells) == len(student_notebook(sample_notebook()).cells)


def test_the_book_is_marked_up_for_grading():
    """Every chapter has at least three exercises, each with a solution and a check, and a stub for each solution."""
    assert BOOK_NOTEBOOKS, "no notebooks in book/"
    for path in BOOK_NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        labels = labels_of(nb)
        assert len(labels) >= 3, f"{path.name}: {labels}"
        solved = {
            label for _, label, cell in exercise_cells(nb) if SOLUTION_TAG in tags(cell)
        }
        assert solved == set(labels), f"{path.name}: exercises without a solution cell"
        for _, label, cell in exercise_cells(student_notebook(nb)):
            if SOLUTION_TAG in tags(cell):
                assert " = ..." in cell.source, (
                    f"{path.name} {label}: the solution binds no name"
                )


def test_every_exercise_names_its_answer_and_every_function_answer_passes_the_screen():
    """The grading run carries what each check reads from the solution's names; a function answer of the book must
    pass the screen that function answers meet on their way there."""
    for path in BOOK_NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for label, exercise in reference_exercises(nb).items():
            assert exercise.answer_names, (
                f"{path.name} {label}: the check reads no name its solution binds"
            )
        for _, _label, cell in exercise_cells(nb):
            source = cell.source.lstrip()
            source = source.partition("\n")[2] if source.startswith("%%") else source
            for node in ast.parse(source).body if SOLUTION_TAG in tags(cell) else []:
                if isinstance(node, ast.FunctionDef):
                    screened(ast.unparse(node), node.name)


# The student edition on disk ------------------------------------------------------------------------------------


def test_student_command_writes_one_notebook_per_chapter(tmp_path):
    status, printed = run_main(["student", "-o", str(tmp_path)])  # book/ by default
    assert status == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        path.name for path in BOOK_NOTEBOOKS
    ]
    assert printed.splitlines() == [
        f"wrote {tmp_path / path.name}" for path in BOOK_NOTEBOOKS
    ]


@pytest.fixture
def sample_edition(tmp_path) -> tuple[Path, Path]:
    """The sample reference in ``tmp_path/book`` and its student edition, written by the command, in ``out``."""
    (tmp_path / "book").mkdir()
    nbformat.write(sample_notebook(), tmp_path / "book" / "sample.ipynb")
    assert (
        run_main(["student", str(tmp_path / "book"), "-o", str(tmp_path / "out")])[0]
        == 0
    )
    return tmp_path / "book", tmp_path / "out"


def test_student_never_overwrites_a_notebook_without_force(sample_edition, capsys):
    book, out = sample_edition
    edited = out / "sample.ipynb"
    edited.write_bytes(edited.read_bytes().replace(b"total = ...", b"total = 5"))
    before = edited.read_bytes()
    assert main(["student", str(book), "-o", str(out)]) == 2
    assert edited.read_bytes() == before
    assert capsys.readouterr().err == (
        f"error: {edited} already exists (a student's work?); nothing was written: "
        "pick an empty folder, or pass --force to overwrite\n"
    )
    assert main(["student", str(book), "-o", str(out), "--force"]) == 0
    assert edited.read_bytes() != before and b"total = ..." in edited.read_bytes()


@pytest.mark.parametrize("inside", [".", "sub", "sub/deeper"])
def test_student_refuses_the_reference_folder_and_folders_inside_it(
    sample_edition, capsys, inside
):
    book, _ = sample_edition
    before = sorted(book.rglob("*"))
    assert main(["student", str(book), "-o", str(book / inside)]) == 2
    assert (
        sorted(book.rglob("*")) == before
        and (book / "sample.ipynb").read_text().count("total = 2 + 3") == 1
    )
    assert capsys.readouterr().err.startswith(
        f"error: -o {book / inside} is inside {book.resolve()}, where the "
        "reference notebooks are"
    )


# Grading: the whole book -----------------------------------------------------------------------------------------


def test_the_reference_book_passes_every_check():
    """The chapters as the site build executed them (no second run): every exercise passes, no cell failed."""
    executed = executed_notebooks()
    assert list(executed) == [path.name for path in BOOK_NOTEBOOKS]
    for name, nb in executed.items():
        verdicts = check_verdicts(nb, reference_exercises(nb))
        assert {
            label: status for label, (status, _) in verdicts.items()
        } == dict.fromkeys(labels_of(nb), PASS)
        assert crashed_cells(nb, name, "", "cell", set()) == []
        shown = [
            out
            for cell in nb.cells
            if CHECK_TAG in tags(cell)
            for out in cell.outputs
            if out.output_type != "stream"
        ]
        assert shown == [], f"{name}: a check cell shows more than its printed verdict"


@pytest.fixture(scope="module")
def student_edition(tmp_path_factory) -> list[Path]:
    """The whole book's student edition, written once for the tests below."""
    return write_student_edition(BOOK_NOTEBOOKS, tmp_path_factory.mktemp("student"))


def every_exercise_graded(status: str) -> dict[tuple[str, str], str]:
    """(notebook name, label) -> ``status`` for every exercise of the book, and nothing else (no crashed cell, no
    run past its time limit)."""
    return {
        (path.name, label): status
        for path in BOOK_NOTEBOOKS
        for label in labels_of(nbformat.read(path, as_version=4))
    }


def graded(results: list[Result]) -> dict[tuple[str, str], str]:
    return {(Path(r.notebook).name, r.label): r.status for r in results}


def test_the_untouched_student_edition_runs_and_grades_zero(student_edition):
    """Every chapter of the student edition runs to its end with nothing answered, and grades as not done."""
    submissions = [
        Submission(path, reference, "student")
        for path, reference in zip(student_edition, BOOK_NOTEBOOKS)
    ]
    results = grade(submissions, jobs=2, timeout=900)  # a whole chapter per run
    assert graded(results) == every_exercise_graded(NOT_DONE), [
        r for r in results if r.status != NOT_DONE
    ]


def code_sources(nb: NotebookNode) -> list[str]:
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


def test_the_student_edition_with_the_solutions_pasted_back_is_the_reference_book(
    student_edition,
):
    """Checked by source, not by running it again: pasted back, every code cell is the reference's, so the
    reference book's own run (every check passes, ``test_the_reference_book_passes_every_check``) stands for it.
    That the grader passes pasted solutions, answers carried between its two runs, is ``test_grading.py``'s, on a
    class of students; that every solution of the book survives the answers' screen is tested above."""
    for student, reference in zip(student_edition, BOOK_NOTEBOOKS):
        reference_nb = nbformat.read(reference, as_version=4)
        pasted = paste_solutions(nbformat.read(student, as_version=4), reference_nb)
        assert code_sources(pasted) == code_sources(reference_nb), reference.name
