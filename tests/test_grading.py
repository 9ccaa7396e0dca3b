"""The grader on a class of fake students handing in a tiny sample notebook (``sample_book.py``): one command grades
them all, each apart from the others, against the reference's own checks, and writes the gradebook.

The students: one hands in the untouched student edition, one the right answers, one wrong answers (one of them with
its check cell deleted), one tries to forge passes (a printed PASS, a deleted check, a patched check function,
``helpers`` edited at run time), one loops forever, one hands in a file that is not a notebook, and one has cells
that crash.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell
from sample_book import (
    LABELS,
    paste_solutions,
    run_main,
    sample_notebook,
    with_checks,
    with_solutions,
)

from helpers import grading
from helpers.exercises import student_notebook
from helpers.grading import (
    ERROR,
    FAIL,
    NOT_DONE,
    PASS,
    GradingAborted,
    execute_apart,
    find_submissions,
)

TIMEOUT = 30  # seconds per run of a notebook: ten times what the sample takes on a busy machine; what the looper costs
LOOP_FOREVER = "import time\nwhile True:\n    try:\n        time.sleep(0.1)\n    except BaseException:\n        pass"
PATCH_THE_CHECKS = """import helpers.checks
helpers.checks.run_check = lambda label, answer, test: print(f"[{label}] PASS")
check_square = lambda square: print("[ex-square] PASS")
square = ..."""
EDIT_HELPERS_ON_DISK = """import pathlib
import helpers.checks
checks_file = pathlib.Path(helpers.checks.__file__)
checks_file.write_text(checks_file.read_text().replace("if not condition:", "if False:"))
low = 1"""
REPLACE_THE_CHECK = (
    'high = 8\n\ndef check_range(low, high):\n    print("[ex-range] PASS")'
)


def class_of_students() -> dict[str, nbformat.NotebookNode | str]:
    """Student name -> what they hand in as ``sample.ipynb`` (a notebook, or text for a file that is not one)."""
    reference = sample_notebook()
    edition = student_notebook(reference)
    crashed = with_solutions(
        reference, ["total = 5", "square = 1 / 0", "low, high = 1", "high = 9"]
    )
    crashed.cells.insert(2, new_code_cell("undefined_name"))
    wrong = with_solutions(
        reference,
        ["total = 4", "def square(x):\n    return x / 0", "low = 1", "high = 8"],
    )
    tampered = with_solutions(
        edition,
        ["total = 4", PATCH_THE_CHECKS, EDIT_HELPERS_ON_DISK, REPLACE_THE_CHECK],
    )
    return {
        "untouched": edition,
        "correct": paste_solutions(edition, reference),
        "wrong": with_checks(
            wrong, [None, "check_square(square)", "check_range(low, high)"]
        ),  # a check deleted
        "tampered": with_checks(
            tampered, ['print("[ex-total] PASS")', None, "check_range(low, high)"]
        ),
        "looper": with_solutions(
            reference, ["total = 5", LOOP_FOREVER, "low = 1", "high = 9"]
        ),
        "corrupt": '{"cells": [ this is not JSON',
        "crashed": crashed,
    }


EXPECTED_GRADEBOOK = [
    ["student", *LABELS, "total (of 3)"],
    ["correct", PASS, PASS, PASS, "3"],
    ["corrupt", ERROR, ERROR, ERROR, "0"],
    ["crashed", PASS, FAIL, FAIL, "1"],
    ["looper", PASS, NOT_DONE, NOT_DONE, "1"],
    ["tampered", FAIL, NOT_DONE, FAIL, "0"],
    ["untouched", NOT_DONE, NOT_DONE, NOT_DONE, "0"],
    ["wrong", FAIL, FAIL, FAIL, "0"],
]


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory) -> tuple[int, str, Path]:
    """The whole class graded by one command: exit status, grade sheet, and the folder holding grades.csv."""
    folder = tmp_path_factory.mktemp("class")
    nbformat.write(
        sample_notebook(),
        (folder / "reference").mkdir() or folder / "reference" / "sample.ipynb",
    )
    for student, handed_in in class_of_students().items():
        path = folder / "handed-in" / student / "sample.ipynb"
        path.parent.mkdir(parents=True)
        path.write_text(handed_in) if isinstance(handed_in, str) else nbformat.write(
            handed_in, path
        )
    status, printed = run_main(
        [
            "grade",
            str(folder / "handed-in"),
            "--reference",
            str(folder / "reference"),
            "--csv",
            str(folder / "grades.csv"),
            "--jobs",
            "2",
            "--timeout",
            str(TIMEOUT),
        ]
    )
    return status, printed, folder


def test_the_gradebook_holds_exactly_the_expected_grades(graded_class):
    status, printed, folder = graded_class
    with (folder / "grades.csv").open() as file:
        assert list(csv.reader(file)) == EXPECTED_GRADEBOOK, printed
    assert status == 1


def grade_lines(printed: str, student: str) -> list[str]:
    """The lines of one student's block of the grade sheet, without the two leading spaces."""
    lines = printed.splitlines()
    start = next(
        i
        for i, line in enumerate(lines)
        if line.startswith(str(Path("handed-in") / student))
        or f"{os.sep}{student}{os.sep}sample.ipynb:" in line
    )
    block = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        block.append(line[2:])
    return block


def test_forged_passes_grade_as_the_answers_deserve(graded_class):
    """A printed PASS, a deleted check beside a patched run_check, and a check replaced after editing helpers on
    disk: the reference's checks run on the saved answers, in a run of their own with a fresh helpers."""
    _, printed, _ = graded_class
    assert grade_lines(printed, "tampered") == [
        "FAIL      ex-total  expected 5, got 4",
        "NOT DONE  ex-square",
        "FAIL      ex-range  got (1, 8)",
    ]


def test_wrong_and_crashed_answers_say_why(graded_class):
    _, printed, _ = graded_class
    assert grade_lines(printed, "wrong") == [
        "FAIL      ex-total  expected 5, got 4",
        "FAIL      ex-square  ZeroDivisionError: division by zero",
        "FAIL      ex-range  got (1, 8)",
    ]
    crashed = grade_lines(printed, "crashed")
    assert crashed[:2] == [
        "PASS      ex-total",
        "FAIL      ex-square  ZeroDivisionError: division by zero",
    ]
    assert crashed[2].startswith("FAIL      ex-range  TypeError: cannot unpack")
    assert crashed[3:] == [
        "ERROR     cell 2  NameError: name 'undefined_name' is not defined"
    ]


def test_a_notebook_that_never_ends_or_cannot_be_read_costs_only_its_own_grade(
    graded_class,
):
    _, printed, _ = graded_class
    assert grade_lines(printed, "looper") == [
        "PASS      ex-total",
        "NOT DONE  ex-square",
        "NOT DONE  ex-range",
        f"ERROR     student's run  stopped after {TIMEOUT} s (--timeout): the notebook's kernel was killed",
    ]
    corrupt = grade_lines(printed, "corrupt")
    assert corrupt == [
        f"ERROR     {label}  the notebook cannot be read (NotJSONError): hand in the .ipynb file "
        "that Jupyter saved"
        for label in LABELS
    ]
    assert printed.splitlines()[-2] == (
        "TOTAL: 5/21 exercises pass, 7 fail, 6 not done, 3 not gradable; "
        "2 problems outside the exercises"
    )


def test_every_student_gets_a_feedback_file_with_each_message(graded_class):
    _, printed, folder = graded_class
    feedback = folder / "grades-feedback"
    assert sorted(path.stem for path in feedback.iterdir()) == [
        row[0] for row in EXPECTED_GRADEBOOK[1:]
    ]
    wrong = (feedback / "wrong.txt").read_text()
    assert (
        "FAIL      ex-square  ZeroDivisionError: division by zero" in wrong
        and "correct" not in wrong
    )
    assert (
        printed.splitlines()[-1]
        == f"wrote {folder / 'grades.csv'} and 7 feedback files in {feedback}"
    )


def test_students_are_told_apart_by_sub_folder_or_file_prefix(tmp_path):
    for name in ("01_idea.ipynb", "02_vae.ipynb"):
        (tmp_path / "book" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "book" / name).write_text("{}")
    for name in (
        "alice_02_vae.ipynb",
        "bob-01_idea.ipynb",
        "02_vae.ipynb",
        "carol/01_idea.ipynb",
        "notes.ipynb",
        ".ipynb_checkpoints/02_vae-checkpoint.ipynb",
    ):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_text("{}")
    found = {
        (s.path.name, s.reference.name if s.reference else None, s.student)
        for s in find_submissions([tmp_path / "in"], tmp_path / "book")
    }
    assert found == {
        ("02_vae.ipynb", "02_vae.ipynb", "in"),
        ("alice_02_vae.ipynb", "02_vae.ipynb", "alice"),
        ("bob-01_idea.ipynb", "01_idea.ipynb", "bob"),
        ("notes.ipynb", None, "notes"),
        ("01_idea.ipynb", "01_idea.ipynb", "carol"),
    }


def test_a_run_sees_no_secrets_and_no_network(tmp_path, monkeypatch):
    """The kernel gets a cleaned environment and, where unshare is allowed, no route out."""
    monkeypatch.setenv("GRADER_API_TOKEN", "do-not-leak")
    probe = new_code_cell(
        "import os, socket\n"
        "print(sorted(name for name in os.environ if 'TOKEN' in name))\n"
        "try:\n    socket.create_connection(('192.0.2.1', 80), timeout=3)\n"
        "except OSError as error:\n    print('no network:', type(error).__name__)"
    )
    nb = nbformat.v4.new_notebook(cells=[probe])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    ran, trouble = execute_apart(nb, tmp_path, TIMEOUT)
    printed = "".join(out.get("text", "") for out in ran.cells[0].outputs)
    assert trouble == "" and printed.startswith("[]\n"), printed
    if grading.network_cut_prefix():
        assert "no network: OSError" in printed, printed


def test_student_code_that_changes_the_graders_files_stops_grading(
    tmp_path, monkeypatch
):
    copy = tmp_path / "helpers"
    shutil.copytree(
        grading.HELPERS_DIR,
        copy,
        ignore=shutil.ignore_patterns("__pycache__", "tiny_shapes_sd"),
    )
    monkeypatch.setattr(grading, "HELPERS_DIR", copy)
    fingerprint = grading.helpers_fingerprint()
    grading.expect_untouched(fingerprint, Path("alice/02_vae.ipynb"))  # nothing changed
    (copy / "checks" / "__init__.py").write_text(
        "# edited by a student\n", encoding="utf-8"
    )
    with pytest.raises(
        GradingAborted,
        match=r"changed on disk while alice/02_vae\.ipynb ran: student code wrote to "
        r"the grader's files\. Restore them",
    ):
        grading.expect_untouched(fingerprint, Path("alice/02_vae.ipynb"))
