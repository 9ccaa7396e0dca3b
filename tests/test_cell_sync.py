"""The functions the chapters write in their cells are the ``helpers`` copies, and editing one wrongly fails the
chapter's own equality check (see ``cell_sync.py`` for the ``mirror:<module>`` tag that registers a cell)."""

from __future__ import annotations

import dataclasses

import pytest
from nbclient.exceptions import CellExecutionError

from built_book import ROOT
from cell_sync import MirroredCell, definitions, drift, mirrored_cells, run_until

BOOK_CELLS = [cell for notebook in sorted((ROOT / "book").glob("*.ipynb")) for cell in mirrored_cells(notebook)]
CHAPTER_5 = ROOT / "book" / "05_schedulers.ipynb"


def test_chapter_5_registers_its_ddim_steps() -> None:
    names = {name for cell in mirrored_cells(CHAPTER_5) for name in definitions(cell.source)}
    assert {"ddim_step", "ddim_step_v"} <= names


@pytest.mark.parametrize("cell", BOOK_CELLS, ids=str)
def test_cell_is_its_helpers_copy(cell: MirroredCell) -> None:
    assert drift(cell) == []


def test_one_changed_character_is_drift() -> None:
    cell = next(cell for cell in mirrored_cells(CHAPTER_5) if "ddim_step" in definitions(cell.source))
    edited = dataclasses.replace(cell, source=cell.source.replace("eta: float = 0.0", "eta: float = 0.5"))
    assert edited.source != cell.source
    assert drift(edited) == [f"{cell}: ddim_step differs from helpers.schedulers.ddim_step"]


def test_a_new_function_in_the_cell_is_drift() -> None:
    cell = mirrored_cells(CHAPTER_5)[0]
    edited = dataclasses.replace(cell, source=cell.source + "\n\ndef helper_only_here():\n    pass\n")
    assert drift(edited) == [f"{cell}: helper_only_here is missing from helpers.schedulers"]


def test_a_sign_flipped_in_the_chapters_ddim_step_fails_its_equality_check() -> None:
    """A learner's wrong edit (the predicted noise added instead of removed) stops chapter 5 at its check.

    The chapter runs only up to that check: its first cell that asserts ``checked.matches``.
    """
    cell = next(cell for cell in mirrored_cells(CHAPTER_5) if "ddim_step" in definitions(cell.source))
    correct = "sample - beta_prod_t ** (0.5) * model_output"
    assert correct in cell.source
    wrong = cell.source.replace(correct, correct.replace("-", "+"))
    with pytest.raises(CellExecutionError) as failure:
        run_until(CHAPTER_5, lambda c: "assert all(checked.matches)" in c.source, edits={cell.index: wrong})
    assert "AssertionError" in str(failure.value)
    assert "assert all(checked.matches)" in str(failure.value)
