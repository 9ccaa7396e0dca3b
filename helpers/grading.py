"""Grade handed-in notebooks against the reference book's own checks, each submission run apart from the rest.

A submission is graded in two runs, each in a fresh kernel in a folder of its own (see ``book/instructors.md``):

1. **The student's run** executes the student's cells, with every check cell replaced by a cell that saves the names
   the reference check reads (``helpers.answers.save_answers``). Nothing it prints counts.
2. **The grading run** executes the *reference* notebook, with each solution replaced by the student's saved answers
   (``helpers.answers.load_answers``) and its own check cells. No student code ran in this kernel before the checks:
   an answer arrives as data, or as a function that is defined, not run, until the check calls it.

The grade of an exercise is what its check does in the grading run, or FAIL where the student's own solution cell
raised. An untouched notebook, whose answers are all still ``...``, skips the grading run: all NOT DONE.
"""

from __future__ import annotations

import ast
import csv
import functools
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat
from IPython.core.inputtransformer2 import TransformerManager
from nbformat import NotebookNode

from .markup import (
    CHECK_TAG,
    SOLUTION_TAG,
    KitError,
    bound_names,
    exercise_cells,
    notebooks_in,
    tags,
)
from .notebook_runner import KERNEL_PID_FILE

PASS, FAIL, NOT_DONE, ERROR = "PASS", "FAIL", "NOT DONE", "ERROR"
FAILED_ERRORS = (
    "ExerciseFailed",
    "AssertionError",
)  # a wrong answer, as opposed to code that crashed
HELPERS_DIR = Path(__file__).resolve().parent
RUNNER = HELPERS_DIR / "notebook_runner.py"
# The variables a graded kernel keeps from the grader's environment; everything else (tokens, keys) stays out.
ENV_ALLOWLIST = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "SD_BOOK_MODEL",
    "CUDA_VISIBLE_DEVICES",
    "HF_HOME",
    "HF_HUB_CACHE",
    "OMP_NUM_THREADS",
)
SOURCE_INDEX = "grader_source_index"  # a run's cell -> its index in the notebook it came from, for the grade sheet
UNSHARE = ["unshare", "--net", "--pid", "--fork", "--kill-child"]


@dataclass
class Result:
    """One graded exercise (or one crashed cell or run outside the exercises) of one notebook."""

    notebook: str
    label: str
    status: str
    message: str = ""
    student: str = ""
    exercise: bool = True  # False for a problem outside the exercises: a crashed cell, a run past its time limit


def problem(notebook: str, where: str, message: str, student: str) -> Result:
    """An ERROR line about something other than an exercise."""
    return Result(notebook, where, ERROR, message, student, exercise=False)


@dataclass
class Exercise:
    """One exercise of the reference notebook: its label and the names its check cell reads from the answer."""

    label: str
    answer_names: list[str]


@dataclass
class Submission:
    """One handed-in notebook, the reference notebook it answers (None when no name matches) and its student."""

    path: Path
    reference: Path | None
    student: str


class GradingAborted(RuntimeError):
    """The grader's own files changed while student code ran: nothing graded after that could be trusted."""


# Reading executed cells ------------------------------------------------------------------------------------------


def cell_error(cell: NotebookNode) -> NotebookNode | None:
    """The error output of an executed code cell, if it raised."""
    return next(
        (out for out in cell.get("outputs", []) if out.output_type == "error"), None
    )


def cell_outcome(cell: NotebookNode, label: str) -> tuple[str, str]:
    """(status, message) of one executed solution or check cell of exercise ``label``."""
    error = cell_error(cell)
    if error is not None:
        wrong_answer = error.ename in FAILED_ERRORS
        return FAIL, error.evalue if wrong_answer else f"{error.ename}: {error.evalue}"
    if CHECK_TAG not in tags(cell):
        return PASS, ""  # a solution cell that ran; the check says whether it is right
    printed = "".join(
        out.get("text", "") for out in cell.outputs if out.output_type == "stream"
    )
    found = re.search(rf"^\[{re.escape(label)}\] (PASS|NOT DONE)", printed, re.M)
    return (
        (found.group(1), "")
        if found
        else (FAIL, f"the check printed no result for [{label}]")
    )


def worst(outcomes: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """An exercise's grade from its cells' outcomes: the first failure, else not done, else pass."""
    for status in (FAIL, NOT_DONE, PASS):
        for outcome in outcomes:
            if outcome[0] == status:
                return outcome
    return FAIL, "no check cell tagged `check`"


def without_outputs(nb: NotebookNode) -> NotebookNode:
    """A copy with no outputs: what a run did not reach shows nothing, not what was saved in the file."""
    clean = nbformat.from_dict(nb)
    for cell in clean.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return clean


# What each run executes ------------------------------------------------------------------------------------------


def reference_exercises(reference: NotebookNode) -> dict[str, Exercise]:
    """label -> Exercise, in the reference notebook's order; the answer is what the solutions bind and the check reads."""
    bound: dict[str, set[str]] = {}
    exercises: dict[str, Exercise] = {}
    for _, label, cell in exercise_cells(reference):
        if label is not None and SOLUTION_TAG in tags(cell):
            bound.setdefault(label, set()).update(bound_names(cell.source))
        if label is not None and CHECK_TAG in tags(cell) and label not in exercises:
            read = [
                name
                for name in names_read(cell.source)
                if name in bound.get(label, set())
            ]
            exercises[label] = Exercise(label, read)
    return exercises


def names_read(source: str) -> list[str]:
    """The names a cell reads, in order of first use."""
    tree = ast.parse(TransformerManager().transform_cell(source))
    return list(
        dict.fromkeys(
            node.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
        )
    )


def stamped_cells(run: NotebookNode) -> Iterator[tuple[int, str | None, NotebookNode]]:
    """``exercise_cells`` of a run, each cell stamped with its index in the notebook it came from, for the grade
    sheet."""
    for index, label, cell in exercise_cells(run):
        cell.metadata[SOURCE_INDEX] = index
        yield index, label, cell


def answers_cell(function: str, call: str, tag: str) -> NotebookNode:
    """A cell the grader adds, tagged ``tag``: it imports ``helpers.answers.<function>`` under the private name
    ``_<function>`` (a student's names stay untouched) and runs ``call``."""
    return nbformat.v4.new_code_cell(
        f"from helpers.answers import {function} as _{function}\n{call}",
        metadata={"tags": [tag]},
    )


def student_run(
    student: NotebookNode, exercises: dict[str, Exercise], answers: Path
) -> NotebookNode:
    """The student's cells with their check cells dropped (kept, edited or moved: none of them runs) and, after each
    exercise's last cell, a cell that saves the names the reference check reads."""
    last_cell = {
        label: index
        for index, label, _ in exercise_cells(student)
        if label in exercises
    }
    saving_after = {index: label for label, index in last_cell.items()}
    run = without_outputs(student)
    cells = []
    for index, _, cell in stamped_cells(run):
        cells += [] if CHECK_TAG in tags(cell) else [cell]
        if index in saving_after:
            exercise = exercises[saving_after[index]]
            cells.append(
                answers_cell(
                    "save_answers",
                    f"_save_answers({str(answers / exercise.label)!r}, globals(), {exercise.answer_names!r})",
                    CHECK_TAG,
                )
            )
    run.cells = cells
    return run


def grading_run(
    reference: NotebookNode, exercises: dict[str, Exercise], answers: Path
) -> NotebookNode:
    """The reference notebook with each exercise's solution cells replaced by one cell loading the saved answers."""
    run = without_outputs(reference)
    cells, loaded = [], set()
    for _, label, cell in stamped_cells(run):
        if SOLUTION_TAG not in tags(cell) or label not in exercises:
            cells.append(cell)
        elif label not in loaded:
            loaded.add(label)
            names = exercises[label].answer_names
            cells.append(
                answers_cell(
                    "load_answers",
                    f"globals().update(_load_answers({str(answers / label)!r}, {names!r}, globals()))",
                    SOLUTION_TAG,
                )
            )
    run.cells = cells
    return run


# How a run is kept apart -----------------------------------------------------------------------------------------


@functools.cache
def network_cut_prefix() -> tuple[str, ...]:
    """The command prefix that runs a notebook without a network, in a PID namespace that ends its kernel with it;
    () where the system allows no new namespaces (then the time limit kills the kernel by its process number)."""
    inner = [
        "sh",
        "-c",
        'ip link set lo up && exec "$0" "$@"',
    ]  # the kernel talks to its runner over loopback
    for prefix in (
        [*UNSHARE, *inner],
        [UNSHARE[0], "--map-root-user", *UNSHARE[1:], *inner],
    ):
        try:
            if (
                subprocess.run(
                    [*prefix, "true"], capture_output=True, timeout=30
                ).returncode
                == 0
            ):
                return tuple(prefix)
        except (OSError, subprocess.TimeoutExpired):
            continue
    return ()


def clean_environment(home: Path, library: Path, threads: int) -> dict[str, str]:
    """The grader's environment cut to ``ENV_ALLOWLIST``; home, temporary files and caches in the run's folder."""
    env = {name: os.environ[name] for name in ENV_ALLOWLIST if name in os.environ}
    env.setdefault(
        "HF_HOME", str(Path.home() / ".cache" / "huggingface")
    )  # where SD v1.5's weights were cached
    env.setdefault("OMP_NUM_THREADS", str(threads))
    env.update(
        HOME=str(home),
        TMPDIR=str(home),
        PYTHONPATH=str(library),
        MPLBACKEND="Agg",
        MPLCONFIGDIR=str(home / ".matplotlib"),
        IPYTHONDIR=str(home / ".ipython"),
        JUPYTER_RUNTIME_DIR=str(home / ".jupyter"),
        JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    if network_cut_prefix():
        env["HF_HUB_OFFLINE"] = "1"
    return env


def execute_apart(
    nb: NotebookNode, folder: Path, timeout: int, threads: int = 1
) -> tuple[NotebookNode | None, str]:
    """Run ``nb`` in ``folder`` with a fresh copy of ``helpers``, killed with its kernel after ``timeout`` seconds.

    Returns the executed notebook (None if it never started) and a line saying what went wrong, if anything.
    """
    library, work = folder / "lib", folder / "work"
    shutil.copytree(
        HELPERS_DIR, library / "helpers", ignore=shutil.ignore_patterns("__pycache__")
    )
    work.mkdir(parents=True)
    nbformat.write(nb, work / "notebook.ipynb")
    command = [
        *network_cut_prefix(),
        sys.executable,
        "-I",
        str(RUNNER),
        "notebook.ipynb",
        "executed.ipynb",
        str(timeout),
    ]
    process = subprocess.Popen(
        command,
        cwd=work,
        env=clean_environment(folder, library, threads),
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        printed, _ = process.communicate(timeout=timeout)
        last_line = (
            printed.strip().splitlines()
            or [f"the run ended with status {process.returncode}"]
        )[-1]
        problem = last_line if process.returncode else ""
    except subprocess.TimeoutExpired:
        stop(process, work)
        problem = (
            f"stopped after {timeout} s (--timeout): the notebook's kernel was killed"
        )
    executed = work / "executed.ipynb"
    return (
        nbformat.read(executed, as_version=4) if executed.exists() else None
    ), problem


def stop(process: subprocess.Popen, work: Path) -> None:
    """Kill the runner and its kernel. In a PID namespace the kernel dies with the runner; elsewhere it runs in a
    session of its own, so it is killed by the process number the runner wrote down."""
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate()
    pid_file = work / KERNEL_PID_FILE
    if not network_cut_prefix() and pid_file.exists():
        pid = int(pid_file.read_text())
        command_line = Path(f"/proc/{pid}/cmdline")
        if (
            command_line.exists() and b"ipykernel" in command_line.read_bytes()
        ):  # still the kernel, not a reused pid
            os.kill(pid, signal.SIGKILL)


def helpers_fingerprint() -> str:
    """A hash of every file of the grader's ``helpers`` (weights included)."""
    digest = hashlib.sha256()
    for path in sorted(HELPERS_DIR.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(
                str(path.relative_to(HELPERS_DIR)).encode() + b"\0" + path.read_bytes()
            )
    return digest.hexdigest()


def expect_untouched(fingerprint: str, path: Path) -> None:
    """Stop grading if the grader's ``helpers`` changed while ``path``'s code ran."""
    if helpers_fingerprint() != fingerprint:
        raise GradingAborted(
            f"{HELPERS_DIR} changed on disk while {path} ran: student code wrote to the grader's "
            "files. Restore them (git checkout helpers) and grade inside a container "
            "(book/instructors.md)"
        )


# Grading one submission ------------------------------------------------------------------------------------------


def grade_submission(
    submission: Submission, timeout: int, fingerprint: str, threads: int = 1
) -> list[Result]:
    """Both runs of one submission; a problem with it becomes a result line, never an exception."""
    name, student = str(submission.path), submission.student
    if submission.reference is None:
        return [
            problem(
                name,
                "notebook",
                "no reference notebook has this name: name it after its chapter "
                "(02_vae.ipynb, or alice_02_vae.ipynb)",
                student,
            )
        ]
    exercises = reference_exercises(nbformat.read(submission.reference, as_version=4))
    try:
        submitted = nbformat.read(submission.path, as_version=4)
    except (
        Exception
    ) as error:  # not JSON, not a notebook, unreadable: each exercise says so
        why = f"the notebook cannot be read ({type(error).__name__}): hand in the .ipynb file that Jupyter saved"
        return [Result(name, label, ERROR, why, student) for label in exercises]
    present = {label for _, label, _ in exercise_cells(submitted)}
    graded = {
        label: exercise for label, exercise in exercises.items() if label in present
    }
    problems: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:

        def run_apart(
            run: NotebookNode, folder: str, where: str
        ) -> NotebookNode | None:
            """Execute ``run`` apart in ``tmp/folder``, make sure it left the grader's files alone, and list
            what went wrong as a problem of ``where``."""
            ran, trouble = execute_apart(run, Path(tmp) / folder, timeout, threads)
            expect_untouched(fingerprint, submission.path)
            if trouble:
                problems.append(problem(name, where, trouble, student))
            return ran

        answers = Path(tmp) / "answers"
        answers.mkdir()
        ran = run_apart(
            student_run(submitted, graded, answers), "student", "student's run"
        )
        verdicts = dict.fromkeys(graded, (NOT_DONE, ""))
        if any(
            (answers / label).exists() for label in graded
        ):  # else every answer is still `...`
            reference = nbformat.read(submission.reference, as_version=4)
            checked = run_apart(
                grading_run(reference, graded, answers), "grading", "grading run"
            )
            problems += (
                crashed_cells(
                    checked, name, student, "reference cell", {SOLUTION_TAG, CHECK_TAG}
                )
                if checked is not None
                else []
            )
            verdicts = check_verdicts(checked, graded)
    own = solution_failures(ran, graded) if ran is not None else {}
    results = [
        Result(
            name, label, *worst([verdicts[label], *own.get(label, [])]), student=student
        )
        if label in graded
        else Result(
            name, label, NOT_DONE, "the exercise is missing from the notebook", student
        )
        for label in exercises
    ]
    return (
        results
        + problems
        + (
            crashed_cells(ran, name, student, "cell", {SOLUTION_TAG})
            if ran is not None
            else []
        )
    )


def solution_failures(
    ran: NotebookNode, exercises: dict[str, Exercise]
) -> dict[str, list[tuple[str, str]]]:
    """label -> FAIL outcomes of the student's own solution cells that raised (their crash is their answer)."""
    failures: dict[str, list[tuple[str, str]]] = {}
    for _, label, cell in exercise_cells(ran):
        if (
            label in exercises
            and SOLUTION_TAG in tags(cell)
            and cell_error(cell) is not None
        ):
            failures.setdefault(label, []).append(cell_outcome(cell, label))
    return failures


def check_verdicts(
    checked: NotebookNode | None, exercises: dict[str, Exercise]
) -> dict[str, tuple[str, str]]:
    """label -> (status, message) from the grading run: its check cell's verdict, or FAIL where loading the answer
    failed or the run never reached the check."""
    outcomes: dict[str, list[tuple[str, str]]] = {}
    for _, label, cell in exercise_cells(checked) if checked is not None else []:
        if (
            label not in exercises
            or cell.cell_type != "code"
            or cell.get("execution_count") is None
        ):
            continue
        outcome = cell_outcome(cell, label)
        if CHECK_TAG in tags(cell) or outcome[0] == FAIL:
            outcomes.setdefault(label, []).append(outcome)
    stopped = (FAIL, "the grading run stopped before this exercise's check")
    return {
        label: worst(outcomes[label]) if label in outcomes else stopped
        for label in exercises
    }


def crashed_cells(
    ran: NotebookNode, name: str, student: str, where: str, graded_tags: set[str]
) -> list[Result]:
    """One ERROR per cell that raised outside the graded ones (``graded_tags``): it may explain failures after it."""
    return [
        problem(
            name,
            f"{where} {cell.metadata.get(SOURCE_INDEX, index)}",
            f"{error.ename}: {error.evalue}",
            student,
        )
        for index, cell in enumerate(ran.cells)
        if cell.cell_type == "code"
        and not graded_tags & set(tags(cell))
        and (error := cell_error(cell)) is not None
    ]


# Grading a class -------------------------------------------------------------------------------------------------


def find_submissions(paths: Sequence[Path], reference_dir: Path) -> list[Submission]:
    """Every handed-in notebook under ``paths``, with its reference notebook (matched by the end of its file name)
    and its student: the sub-folder it lies in, else its file name's prefix (``alice_02_vae.ipynb``), else its
    folder."""
    missing = [top for top in paths if not top.exists()]
    if (
        missing
    ):  # the class's folder first: the reference is the kit's own and usually right
        raise KitError(f"no such notebook or folder: {missing[0]}")
    references = sorted(reference_dir.glob("*.ipynb")) if reference_dir.is_dir() else []
    if not references:
        raise KitError(
            f"no reference notebooks in {reference_dir}: pass --reference with the book's folder"
        )
    submissions = []
    for top in paths:
        in_folder = [
            path
            for path in [*sorted(top.glob("*.ipynb")), *sorted(top.glob("*/*.ipynb"))]
            if not path.relative_to(top).parts[0].startswith(".")
        ]  # not .ipynb_checkpoints/
        found = in_folder if top.is_dir() else notebooks_in([top])
        if not found:
            raise KitError(f"no notebooks (*.ipynb) in {top} or its sub-folders")
        for path in found:
            reference = max(
                (r for r in references if path.name.endswith(r.name)),
                key=lambda r: len(r.name),
                default=None,
            )
            prefix = (
                path.name[: -len(reference.name)].rstrip("-_. ")
                if reference
                else path.stem
            )
            in_subfolder = top.is_dir() and path.parent != top
            student = (
                path.parent.name
                if in_subfolder
                else prefix or path.parent.resolve().name
            )
            submissions.append(Submission(path, reference, student))
    return submissions


def grade(
    submissions: Sequence[Submission], jobs: int = 1, timeout: int = 600
) -> list[Result]:
    """Grade every submission, ``jobs`` at a time, in the order given. If student code changes the grader's own files,
    the rest is not graded and says why."""
    fingerprint = helpers_fingerprint()
    threads = max(
        1, (os.cpu_count() or 1) // max(1, jobs)
    )  # PyTorch in every kernel would otherwise take them all
    results: list[Result] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [
            pool.submit(grade_submission, s, timeout, fingerprint, threads)
            for s in submissions
        ]
        aborted = ""
        for submission, future in zip(submissions, futures):
            try:
                results += future.result() if not aborted else []
            except GradingAborted as error:
                aborted = str(error)
            except Exception as error:  # a fault of the grader's own: this submission says so, the rest go on
                results.append(
                    problem(
                        str(submission.path),
                        "grader",
                        f"{type(error).__name__}: {error}",
                        submission.student,
                    )
                )
            if aborted:
                future.cancel()
                results.append(
                    problem(
                        str(submission.path), "not graded", aborted, submission.student
                    )
                )
    return results


def report(results: Sequence[Result]) -> str:
    """The grade sheet: per notebook, one line per exercise (status, label, message) and per problem, then a total."""
    lines = []
    for notebook in dict.fromkeys(result.notebook for result in results):
        mine = [result for result in results if result.notebook == notebook]
        graded = [result for result in mine if result.exercise]
        lines.append(
            f"{notebook}: {sum(r.status == PASS for r in graded)}/{len(graded)} pass"
        )
        lines += [
            f"  {r.status:<8}  {r.label}" + (f"  {r.message}" if r.message else "")
            for r in mine
        ]
    graded = [result for result in results if result.exercise]
    counts = {
        status: sum(result.status == status for result in graded)
        for status in (PASS, FAIL, NOT_DONE, ERROR)
    }
    lines.append(
        f"TOTAL: {counts[PASS]}/{len(graded)} exercises pass, {counts[FAIL]} fail, {counts[NOT_DONE]} not "
        f"done, {counts[ERROR]} not gradable; {len(results) - len(graded)} problems outside the exercises"
    )
    return "\n".join(lines)


def write_gradebook(
    results: Sequence[Result], submissions: Sequence[Submission], path: Path
) -> Path:
    """One row per student, one column per exercise (PASS / FAIL / NOT DONE / ERROR) and the number passed; and a
    feedback file per student, with every line of their grade sheet, in ``<csv name>-feedback/``. Returns that folder.

    An exercise of a chapter a student did not hand in is NOT DONE.
    """
    labels: dict[str, None] = {}
    for reference in sorted(
        {s.reference for s in submissions if s.reference is not None}
    ):
        labels.update(
            dict.fromkeys(reference_exercises(nbformat.read(reference, as_version=4)))
        )
    students = list(dict.fromkeys(s.student for s in submissions))
    feedback = path.with_name(f"{path.stem}-feedback")
    feedback.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["student", *labels, f"total (of {len(labels)})"])
        for student in students:
            mine = [result for result in results if result.student == student]
            grades = dict.fromkeys(labels, NOT_DONE) | {
                r.label: r.status for r in mine if r.exercise
            }
            writer.writerow(
                [
                    student,
                    *(grades[label] for label in labels),
                    sum(g == PASS for g in grades.values()),
                ]
            )
            (feedback / f"{student}.txt").write_text(report(mine) + "\n")
    return feedback


def grade_command(
    paths: Sequence[Path],
    reference_dir: Path,
    jobs: int,
    timeout: int,
    csv_path: Path | None,
) -> int:
    """``python -m helpers.exercises grade``: print the grade sheet (and write the gradebook); 0 when all passed."""
    submissions = find_submissions(paths, reference_dir)
    if csv_path is not None and csv_path.is_dir():
        raise KitError(
            f"--csv {csv_path} is a folder: name the file to write, such as grades.csv"
        )
    if not network_cut_prefix():
        print(
            "note: `unshare` is not allowed here, so student code runs with the network; see book/instructors.md"
        )
    results = grade(submissions, jobs, timeout)
    print(report(results))
    if csv_path is not None:
        feedback = write_gradebook(results, submissions, csv_path)
        print(
            f"wrote {csv_path} and {len({s.student for s in submissions})} feedback files in {feedback}"
        )
    return 0 if results and all(result.status == PASS for result in results) else 1
