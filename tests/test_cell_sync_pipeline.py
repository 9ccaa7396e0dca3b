"""Chapters 6 and 7 write the pipeline's steps in their own cells; ``helpers`` keeps the copy that later chapters
import. Each cell's function must be the helpers function character for character (d2l's ``#@save``, checked), and
a step edited wrongly in its cell must make the chapter's own proof against diffusers fail.

The mechanism is general: ``cell_source(notebook, name)`` finds the one top-level ``def name`` among a notebook's code
cells with ``ast``, and ``SYNCED`` pairs notebooks with helpers functions.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import img2img, latents, pipeline

BOOK = Path(__file__).resolve().parent.parent / "book"
SYNCED: list[tuple[str, Callable]] = [
    ("06_pipeline.ipynb", pipeline.encode_prompt),
    ("06_pipeline.ipynb", pipeline.make_latents),
    ("06_pipeline.ipynb", pipeline.denoise),
    ("06_pipeline.ipynb", latents.decode_latents),
    ("06_pipeline.ipynb", pipeline.generate),
    ("07_img2img_and_training.ipynb", img2img.get_timesteps),
    ("07_img2img_and_training.ipynb", img2img.make_start_latents),
    ("07_img2img_and_training.ipynb", img2img.img2img),
]


def function_sources(source: str, name: str) -> list[str]:
    """The text of every top-level ``def name`` in ``source``, decorators included (none if it does not parse)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # a cell with IPython magics defines no synced function
        return []
    lines = source.splitlines(keepends=True)
    found = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            first = min([node.lineno] + [decorator.lineno for decorator in node.decorator_list])
            found.append("".join(lines[first - 1 : node.end_lineno]).rstrip("\n") + "\n")
    return found


def cell_source(notebook: nbformat.NotebookNode, name: str) -> str:
    """The one definition of function ``name`` among the notebook's code cells."""
    found = [text for cell in notebook.cells if cell.cell_type == "code"
             for text in function_sources(cell.source, name)]
    assert len(found) == 1, f"expected one cell defining {name}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize(("notebook", "function"), SYNCED, ids=[f"{nb[:2]}-{fn.__name__}" for nb, fn in SYNCED])
def test_cell_defines_the_helpers_function(notebook: str, function: Callable) -> None:
    in_cell = cell_source(nbformat.read(BOOK / notebook, as_version=4), function.__name__)
    assert in_cell == inspect.getsource(function), (
        f"{notebook}'s {function.__name__} differs from {function.__module__}'s: change both, the same way")


def test_a_changed_cell_is_caught() -> None:
    """The comparison sees one changed character, and finds decorated functions whole."""
    original = inspect.getsource(pipeline.denoise)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import torch"),
                                               nbformat.v4.new_code_cell(original.replace("> 1", ">= 1"))])
    assert cell_source(notebook, "denoise").startswith("@torch.no_grad()\ndef denoise(")
    assert cell_source(notebook, "denoise") != original
    notebook.cells.append(nbformat.v4.new_code_cell(original))
    with pytest.raises(AssertionError, match="found 2"):
        cell_source(notebook, "denoise")


# A learner's wrong edit fails the chapter's proof ---------------------------------------------------------------

# (notebook, function, its right text, a wrong one, the proof's assertion, (the step count, a smaller one))
WRONG_EDITS = {
    "guidance applied the wrong way round": (
        "06_pipeline.ipynb", "denoise",
        "noise_pred_text - noise_pred_uncond", "noise_pred_uncond - noise_pred_text",
        "assert difference <= 1", ("NUM_STEPS = 25", "NUM_STEPS = 6")),
    "latent sample drawn without the generator": (
        "07_img2img_and_training.ipynb", "make_start_latents",
        "encode_image(vae, image, generator)", "encode_image(vae, image)",
        "assert gap <= 1", ("NUM_STEPS = 50", "NUM_STEPS = 10")),
}


def replace_once(cells: list[nbformat.NotebookNode], old: str, new: str) -> None:
    """Replace ``old`` in the one code cell that holds it."""
    holding = [cell for cell in cells if cell.cell_type == "code" and old in cell.source]
    assert len(holding) == 1 and holding[0].source.count(old) == 1, f"expected {old!r} once"
    holding[0].source = holding[0].source.replace(old, new)


def run_until(notebook: nbformat.NotebookNode, last: int, folder: Path) -> list[nbformat.NotebookNode]:
    """Execute cells ``0..last`` (errors kept as outputs); returns the cells that raised."""
    notebook.cells = notebook.cells[: last + 1]
    NotebookClient(notebook, timeout=1200, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    return [cell for cell in notebook.cells if any(out.output_type == "error" for out in cell.get("outputs", []))]


@pytest.mark.parametrize("edit", list(WRONG_EDITS))
def test_a_wrong_step_fails_the_chapter_proof(edit: str) -> None:
    """The chapter runs up to its proof with one step edited (and fewer denoising steps, to be quick)."""
    name, function, right, wrong, proof, fewer_steps = WRONG_EDITS[edit]
    notebook = nbformat.read(BOOK / name, as_version=4)
    cell = next(cell for cell in notebook.cells if cell.cell_type == "code" and function_sources(cell.source, function))
    replace_once([cell], right, wrong)
    replace_once(notebook.cells, *fewer_steps)
    proof_cell = next(i for i, cell in enumerate(notebook.cells) if proof in cell.source)
    failed = run_until(notebook, proof_cell, BOOK)
    assert [cell.source for cell in failed] == [notebook.cells[proof_cell].source], "only the proof may fail"
    error = next(out for out in failed[0].outputs if out.output_type == "error")
    assert error.ename == "AssertionError"
