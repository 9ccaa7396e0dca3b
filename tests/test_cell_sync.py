"""The functions the chapters write in their cells are the ``helpers`` copies, and editing one wrongly fails the
chapter's own equality check (see ``cell_sync.py`` for the ``mirror:<module>`` tag that registers a cell)."""

from __future__ import annotations

import dataclasses

import nbformat
import pytest
from built_book import ROOT
from cell_sync import MirroredCell, definitions, drift, mirrored_cells, run_until
from nbclient.exceptions import CellExecutionError

BOOK_CELLS = [
    cell
    for notebook in sorted((ROOT / "book").glob("*.ipynb"))
    for cell in mirrored_cells(notebook)
]
CHAPTER_5 = ROOT / "book" / "05_schedulers.ipynb"


CHAPTER_6 = ROOT / "book" / "06_pipeline.ipynb"
CHAPTER_7 = ROOT / "book" / "07_img2img_and_training.ipynb"
CHAPTER_9 = ROOT / "book" / "09_inpainting_and_control.ipynb"


@pytest.mark.parametrize(
    ("chapter", "names"),
    [
        (CHAPTER_5, {"ddim_step", "ddim_step_v"}),
        (
            CHAPTER_6,
            {"encode_prompt", "make_latents", "denoise", "decode_latents", "generate"},
        ),
        (
            CHAPTER_7,
            {
                "get_timesteps",
                "make_start_latents",
                "img2img",
                "sample_batch",
                "diffusion_loss",
                "train_step",
            },
        ),
        (
            CHAPTER_9,
            {"keep_unmasked", "inpaint", "controlnet_residuals", "controlnet_denoise"},
        ),
    ],
    ids=lambda value: value.stem if hasattr(value, "stem") else "",
)
def test_the_chapters_register_what_they_write(chapter, names: set[str]) -> None:
    assert names <= {
        name for cell in mirrored_cells(chapter) for name in definitions(cell.source)
    }


@pytest.mark.parametrize("cell", BOOK_CELLS, ids=str)
def test_cell_is_its_helpers_copy(cell: MirroredCell) -> None:
    assert drift(cell) == []


def test_one_changed_character_is_drift() -> None:
    cell = next(
        cell
        for cell in mirrored_cells(CHAPTER_5)
        if "ddim_step" in definitions(cell.source)
    )
    edited = dataclasses.replace(
        cell, source=cell.source.replace("eta: float = 0.0", "eta: float = 0.5")
    )
    assert edited.source != cell.source
    assert drift(edited) == [
        f"{cell}: ddim_step differs from helpers.schedulers.ddim_step"
    ]


def test_a_new_function_in_the_cell_is_drift() -> None:
    cell = mirrored_cells(CHAPTER_5)[0]
    edited = dataclasses.replace(
        cell, source=cell.source + "\n\ndef helper_only_here():\n    pass\n"
    )
    assert drift(edited) == [
        f"{cell}: helper_only_here is missing from helpers.schedulers"
    ]


def test_a_sign_flipped_in_the_chapters_ddim_step_fails_its_equality_check() -> None:
    """A learner's wrong edit (the predicted noise added instead of removed) stops chapter 5 at its check.

    The chapter runs only up to that check: its first cell that asserts ``checked.matches``.
    """
    cell = next(
        cell
        for cell in mirrored_cells(CHAPTER_5)
        if "ddim_step" in definitions(cell.source)
    )
    correct = "sample - beta_prod_t ** (0.5) * model_output"
    assert correct in cell.source
    wrong = cell.source.replace(correct, correct.replace("-", "+"))
    with pytest.raises(CellExecutionError) as failure:
        run_until(
            CHAPTER_5,
            lambda c: "assert all(checked.matches)" in c.source,
            edits={cell.index: wrong},
        )
    assert "AssertionError" in str(failure.value)
    assert "assert all(checked.matches)" in str(failure.value)


def edited_cell(chapter, function: str, right: str, wrong: str) -> dict[int, str]:
    """The cell of ``chapter`` that writes ``function``, with ``right`` replaced by ``wrong`` (once)."""
    cell = next(
        cell for cell in mirrored_cells(chapter) if function in definitions(cell.source)
    )
    assert cell.source.count(right) == 1
    return {cell.index: cell.source.replace(right, wrong)}


def fewer_steps(chapter, line: str, fewer: str) -> dict[int, str]:
    """The cell of ``chapter`` that sets the step count, set to fewer steps so the run stays short."""
    nb = nbformat.read(chapter, as_version=4)
    index = next(i for i, cell in enumerate(nb.cells) if line in cell.source)
    return {index: nb.cells[index].source.replace(line, fewer)}


@pytest.mark.parametrize(
    ("chapter", "function", "right", "wrong", "proof", "steps"),
    [
        (
            CHAPTER_6,
            "denoise",
            "noise_pred_text - noise_pred_uncond",
            "noise_pred_uncond - noise_pred_text",
            "assert gap <= 1",
            ("NUM_STEPS = 25", "NUM_STEPS = 6"),
        ),
        (
            CHAPTER_7,
            "make_start_latents",
            "encode_image(vae, image, generator)",
            "encode_image(vae, image)",
            "assert gap <= 1",
            ("NUM_STEPS = 50", "NUM_STEPS = 10"),
        ),
    ],
    ids=["guidance the wrong way round", "latent sample without the generator"],
)
def test_a_wrong_verb_fails_the_chapters_proof(
    chapter, function: str, right: str, wrong: str, proof: str, steps: tuple[str, str]
) -> None:
    """A learner's wrong edit of a verb in chapter 6 or 7 stops the chapter at its proof against diffusers."""
    edits = {
        **fewer_steps(chapter, *steps),
        **edited_cell(chapter, function, right, wrong),
    }
    with pytest.raises(CellExecutionError) as failure:
        run_until(chapter, lambda cell: proof in cell.source, edits=edits, timeout=1200)
    assert "AssertionError" in str(failure.value) and proof in str(failure.value)
