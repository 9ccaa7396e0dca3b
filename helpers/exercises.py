"""Hand out the book's exercises and grade them.

    python -m helpers.exercises student -o student/              # a student edition of every book/*.ipynb
    python -m helpers.exercises grade handed-in/ --csv grades.csv  # grade a class: one sub-folder per student
    python -m helpers.exercises grade handed-in/02_vae.ipynb      # ... or one notebook

``student`` never overwrites a notebook without ``--force`` and never writes into the reference book's folder.
``grade`` runs each submission apart from the others against the reference book's own checks (``helpers.grading``);
``book/instructors.md`` says what that guarantees.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .cli import add_count_option
from .grading import grade_command
from .markup import (
    SOLUTION_END_RE,
    SOLUTION_START_RE,
    SOLUTION_TAG,
    KitError,
    bound_names,
    exercise_cells,
    notebooks_in,
    read_notebook,
    tags,
)

BOOK_DIR = Path(__file__).resolve().parent.parent / "book"
MODEL_ANSWER_TAG = "model-answer"  # a markdown cell inside a solution that answers an open question in words


# The student edition ---------------------------------------------------------------------------------------------


def stub_source(solution: str, label: str | None) -> str:
    """The "your code here" cell that stands for one solution cell: every name it bound set to ``...``."""
    lines = [
        f"# YOUR CODE HERE (exercise {label}): replace each `...` with your answer, then run the check below."
    ]
    for name, hint in bound_names(solution).items():
        lines += [f"# `{name}` should be {hint}"] if hint else []
        lines.append(f"{name} = ...")
    return "\n".join(lines)


def student_cell(cell: NotebookNode, label: str | None) -> NotebookNode | None:
    """The student edition's version of one cell: solutions stubbed, their gates turned into a note or dropped."""
    if cell.cell_type == "code" and SOLUTION_TAG in tags(cell):
        return nbformat.v4.new_code_cell(
            stub_source(cell.source, label), metadata={"tags": [SOLUTION_TAG]}
        )
    if cell.cell_type == "markdown" and (
        SOLUTION_END_RE.search(cell.source) or MODEL_ANSWER_TAG in tags(cell)
    ):
        return None
    if cell.cell_type == "markdown" and SOLUTION_START_RE.search(cell.source):
        return nbformat.v4.new_markdown_cell(
            f"**Your answer to `{label}`** goes in the `YOUR CODE HERE` cell below; the check cell after it says "
            "whether it is right (`PASS`), still missing (`NOT DONE`), or wrong and why."
        )
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


def check_student_target(notebooks: Sequence[Path], out_dir: Path, force: bool) -> None:
    """Refuse to write into a source folder (the reference book would become stubs) or over an existing notebook
    without ``force`` (it may be a student's work); checked for every notebook before anything is written."""
    if out_dir.exists() and not out_dir.is_dir():
        raise KitError(
            f"-o {out_dir} is a file, not a folder: name a folder for the student edition"
        )
    out = out_dir.resolve()
    for source_dir in sorted({path.resolve().parent for path in notebooks}):
        if out == source_dir or source_dir in out.parents:
            raise KitError(
                f"-o {out_dir} is inside {source_dir}, where the reference notebooks are: writing there "
                "would replace the solutions; pick a folder outside it, such as student/"
            )
    existing = [
        str(out_dir / path.name) for path in notebooks if (out_dir / path.name).exists()
    ]
    if existing and not force:
        raise KitError(
            f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''} (a student's work?); "
            "nothing was written: pick an empty folder, or pass --force to overwrite"
        )


def write_student_edition(
    notebooks: Sequence[Path], out_dir: Path, force: bool = False
) -> list[Path]:
    """Write the student edition of each notebook into ``out_dir``; returns the paths written."""
    check_student_target(notebooks, out_dir, force)
    editions = {
        out_dir / path.name: student_notebook(read_notebook(path)) for path in notebooks
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for target, edition in editions.items():
        nbformat.write(edition, target)
    return list(editions)


# Command line ----------------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    commands = argparse.ArgumentParser(
        prog="python -m helpers.exercises",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = commands.add_subparsers(dest="command", required=True)
    student = sub.add_parser(
        "student",
        help="write a student edition: solutions replaced by 'your code here' cells",
    )
    student.add_argument(
        "notebooks",
        nargs="*",
        type=Path,
        default=[BOOK_DIR],
        help="notebooks or folders (book/)",
    )
    student.add_argument(
        "-o",
        "--out",
        type=Path,
        required=True,
        help="folder to write the student notebooks to",
    )
    student.add_argument(
        "--force", action="store_true", help="overwrite notebooks already in the folder"
    )
    grader = sub.add_parser(
        "grade",
        help="run handed-in notebooks against the reference checks and grade them",
    )
    grader.add_argument(
        "notebooks",
        nargs="+",
        type=Path,
        help="notebooks, or folders of them (one sub-folder or file-name prefix per student)",
    )
    grader.add_argument(
        "--reference",
        type=Path,
        default=BOOK_DIR,
        help="folder of the reference notebooks, matched by file name (default: book/)",
    )
    add_count_option(
        grader,
        "--jobs",
        1,
        "submissions graded at once",
        "one submission at a time is the least",
    )
    add_count_option(
        grader,
        "--timeout",
        600,
        "seconds each run of a notebook may take before its kernel is killed",
        "0 would mean no limit, and a notebook that loops would never end",
    )
    grader.add_argument(
        "--csv",
        type=Path,
        help="write a gradebook here, and one feedback file per student beside it",
    )
    return commands


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "student":
            for path in write_student_edition(
                notebooks_in(args.notebooks), args.out, args.force
            ):
                print(f"wrote {path}")
            return 0
        return grade_command(
            args.notebooks, args.reference, args.jobs, args.timeout, args.csv
        )
    except KitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
