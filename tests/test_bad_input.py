"""Every bad input of issue 15, with the one-line message, in the course's words, that it must give.

A message names the problem and the fix. The cases the grader meets in handed-in notebooks (a forged PASS, a notebook
that loops or cannot be read) are in ``test_grading.py``; the checks that once passed wrong answers are in
``test_checks_chNN.py``, each beside the wrong answer that fooled it; the model choice's messages are in
``test_models.py``.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
import torch
from PIL import Image
from sample_book import sample_notebook

from helpers import (
    bench,
    decode_latents,
    encode_image,
    exercises,
    image_grid,
    numpy_to_pil,
    show_images,
    to_pil,
)
from helpers.checks import ExerciseFailed
from helpers.checks.ch05 import check_crossover
from helpers.checks.ch08 import SETUPS, check_small_gpu
from helpers.schedulers import make_scheduler
from helpers.sd15 import sd15_config
from helpers.tiny import tokenizer

PICTURE = Image.new("RGB", (8, 8), "red")


def pip_offline(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess:
    """What ``pip download`` gives without a network."""
    return subprocess.CompletedProcess(
        args, 1, "", "ERROR: Could not find a version that satisfies the requirement"
    )


# Python calls: (what is wrong, the call, the error, the message it must give)
CALLS: list[tuple[str, Callable[..., Any], type[Exception], str]] = [
    (
        "integer pixels above 255",
        lambda _: numpy_to_pil(np.full((4, 4, 3), 300)),
        ValueError,
        r"^int64 pixels must lie in \[0, 255\], got 300\.\.300: 16-bit pictures need dividing by 257 first$",
    ),
    (
        "negative integer pixels",
        lambda _: numpy_to_pil(np.full((4, 4, 3), -1)),
        ValueError,
        r"^int64 pixels must lie in \[0, 255\], got -1\.\.-1$",
    ),
    (
        "0-255 floats",
        lambda _: numpy_to_pil(np.full((4, 4, 3), 200.0)),
        ValueError,
        r"^float pixels must lie in \[0, 1\], got 200\.\.200: 0-255 floats need dividing by 255$",
    ),
    (
        "[-1, 1] floats",
        lambda _: numpy_to_pil(np.linspace(-1, 1, 48).reshape(4, 4, 3)),
        ValueError,
        r"^float pixels must lie in \[0, 1\], got -1\.\.1: pictures in \[-1, 1\] need \(x \+ 1\) / 2$",
    ),
    (
        "NaN pixels",
        lambda _: numpy_to_pil(np.full((4, 4, 3), np.nan)),
        ValueError,
        r"^float pixels hold NaN \(48 of 48 values\): the numbers that made them went wrong",
    ),
    (
        "NaN latents",
        lambda vae: decode_latents(vae, torch.full((1, 4, 2, 2), float("nan"))),
        ValueError,
        r"^the latents hold NaN or infinity \(16 of 16 values\): .* try float32$",
    ),
    (
        "0-255 float pixels for the VAE",
        lambda vae: encode_image(vae, torch.full((1, 3, 16, 16), 255.0)),
        ValueError,
        r"^pixels for the VAE must lie in \[-1, 1\], got 255\.\.255: preprocess\(\) makes them; 0-255 values need "
        r"/ 127\.5 - 1",
    ),
    (
        "uint8 pixels for the VAE",
        lambda vae: encode_image(vae, torch.zeros((1, 3, 16, 16), dtype=torch.uint8)),
        TypeError,
        r"^expected float pixels in \[-1, 1\], got a torch\.uint8 tensor: preprocess\(\) makes them$",
    ),
    (
        "a grid of 0 rows",
        lambda _: image_grid([PICTURE], rows=0),
        ValueError,
        r"^rows must be a whole number of at least 1 \(or None to choose\), got 0$",
    ),
    (
        "a grid of 0 columns",
        lambda _: image_grid([PICTURE], cols=0),
        ValueError,
        r"^cols must be a whole number of at least 1 \(or None to choose\), got 0$",
    ),
    (
        "a grid of one picture, not a list",
        lambda _: image_grid(PICTURE),
        TypeError,
        r"^image_grid takes a list of PIL images, got one Image: pass \[picture\] for one picture",
    ),
    (
        "show_images given an array",
        lambda _: show_images(np.zeros((2, 8, 8, 3), np.uint8)),
        TypeError,
        r"^show_images takes a list of PIL images, got one ndarray: .* numpy_to_pil\(array\) for an array$",
    ),
    (
        "show_images given a list of arrays",
        lambda _: show_images([np.zeros((8, 8, 3), np.uint8)]),
        TypeError,
        r"^show_images takes PIL images, got ndarray \(numpy_to_pil converts arrays\)$",
    ),
    (
        "a title that is None",
        lambda _: show_images([PICTURE], titles=[None]),
        TypeError,
        r'^titles must be strings, but title 0 is None: use "" for a picture without one$',
    ),
    (
        "one title for two pictures",
        lambda _: show_images([PICTURE, PICTURE], titles="both"),
        ValueError,
        r"^2 images but 1 titles: give one title per picture, in a list$",
    ),
    (
        "batch sizes of letters",
        lambda _: check_small_gpu(dict.fromkeys(SETUPS, "a"), "too short"),
        ExerciseFailed,
        r"^fits_in_7gib\['classic attention'\]: expected a Python int, got str 'a'$",
    ),
    (
        "crossover as a float",
        lambda _: check_crossover(
            400.0, make_scheduler("DDPM", sd15_config("scheduler")).config
        ),
        ExerciseFailed,
        r"^crossover_t: expected one integer, got float 400\.0$",
    ),
]


@pytest.mark.parametrize(
    "what, call, error, message", CALLS, ids=[case[0] for case in CALLS]
)
def test_a_bad_call_says_what_is_wrong_and_how_to_fix_it(
    what, call, error, message, sd_vae
):
    with pytest.raises(error) as raised:
        call(sd_vae)
    assert "\n" not in str(raised.value)
    assert raised.match(message)


def test_tokenizer_offline_says_what_it_needs(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(tokenizer.subprocess, "run", pip_offline)
    with pytest.raises(
        RuntimeError,
        match=r"^could not download the open-clip-torch wheel from PyPI for CLIP's BPE "
        r"file \(ERROR: Could not find a version .*\): connect to PyPI, or copy "
        r"helpers/tiny_shapes_sd/tokenizer",
    ):
        tokenizer.download_bpe(tmp_path)
    assert (
        "needs its BPE file (open_clip/bpe_simple_vocab_16e6.txt.gz)"
        in capsys.readouterr().err
    )


def test_16_bit_pngs_are_scaled_not_clipped(tmp_path):
    """A 16-bit greyscale PNG once turned white: every value above 255 was clipped."""
    levels = np.array(
        [[0, 257 * 64, 257 * 128, 65535]], dtype=np.uint16
    )  # black, dark, mid grey, white
    Image.fromarray(levels).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    assert [pixel[0] for pixel in to_pil(tmp_path / "deep.png").getdata()] == [
        0,
        64,
        128,
        255,
    ]
    assert np.asarray(to_pil(levels))[0, :, 0].tolist() == [0, 64, 128, 255]


# Each bad command line (split at spaces; {book}, {out} and {tmp} are the workspace's folders, and {out} holds an
# edited student edition) and the last line it must print, as a regular expression.
EXERCISES_ERRORS = {
    "student {book} -o {out}": r"^error: {out}/sample\.ipynb already exists \(a student's work\?\); nothing was written: pick an empty folder, or pass --force to overwrite$",
    "student {book} -o {book}": r"^error: -o {book} is inside .*, where the reference notebooks are: writing there would replace the solutions; pick a folder outside it, such as student/$",
    "student {book} -o {book}/student": r"^error: -o {book}/student is inside .*, where the reference notebooks are",
    "student {book} -o {tmp}/junk/notes.txt": r"^error: -o {tmp}/junk/notes\.txt is a file, not a folder: name a folder for the student edition$",
    "student {tmp}/missing.ipynb -o {tmp}/new": r"^error: no such notebook or folder: {tmp}/missing\.ipynb$",
    "student {tmp}/junk/notes.txt -o {tmp}/new": r"^error: {tmp}/junk/notes\.txt is not a notebook: name \.ipynb files or folders that hold them$",
    "student {tmp}/junk/corrupt.ipynb -o {tmp}/new": r"^error: cannot read {tmp}/junk/corrupt\.ipynb as a notebook \(NotJSONError\): is it a \.ipynb file\?$",
    "grade {out} --timeout 0": r"argument --timeout: must be at least 1, got 0: 0 would mean no limit, and a notebook that loops would never end$",
    "grade {out} --timeout -5": r"argument --timeout: must be at least 1",
    "grade {out} --jobs 0": r"argument --jobs: must be at least 1, got 0",
    "grade {tmp}/missing": r"^error: no such notebook or folder: {tmp}/missing$",
    "grade {out} --reference {tmp}/new": r"^error: no reference notebooks in {tmp}/new: pass --reference with the book's folder$",
    "grade {out} --reference {book} --csv {tmp}": r"^error: --csv {tmp} is a folder: name the file to write, such as grades\.csv$",
}
BENCH_ERRORS = {
    "--runs 0": r"argument --runs: must be at least 1, got 0: a median needs one timed run or more$",
    "--steps 0": r"argument --steps: must be at least 1, got 0: a picture needs one denoising step or more$",
}
COMMANDS = [
    (module, line, message)
    for module, errors in ((exercises, EXERCISES_ERRORS), (bench, BENCH_ERRORS))
    for line, message in errors.items()
]


@pytest.fixture
def workspace(tmp_path) -> dict[str, str]:
    """A sample book, its student edition with one answer edited, a text file and a corrupt notebook."""
    (tmp_path / "book").mkdir()
    nbformat.write(sample_notebook(), tmp_path / "book" / "sample.ipynb")
    assert (
        exercises.main(["student", str(tmp_path / "book"), "-o", str(tmp_path / "out")])
        == 0
    )
    edited = tmp_path / "out" / "sample.ipynb"
    edited.write_text(edited.read_text().replace("total = ...", "total = 5"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("not a notebook")
    (tmp_path / "junk" / "corrupt.ipynb").write_text("{ not json")
    (tmp_path / "new").mkdir()
    return {
        "book": str(tmp_path / "book"),
        "out": str(tmp_path / "out"),
        "tmp": str(tmp_path),
    }


@pytest.mark.parametrize(
    "module, line, message", COMMANDS, ids=[line for _, line, _ in COMMANDS]
)
def test_a_bad_command_line_says_what_is_wrong_and_how_to_fix_it(
    module, line, message, workspace, capsys
):
    before = {
        path: path.read_bytes()
        for path in Path(workspace["tmp"]).rglob("*")
        if path.is_file()
    }
    try:
        status = module.main([arg.format(**workspace) for arg in line.split()])
    except SystemExit as exit_:  # argparse refuses an option with status 2
        status = exit_.code
    assert status == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.search(message.format(**workspace), last_line), last_line
    assert {
        path: path.read_bytes()
        for path in Path(workspace["tmp"]).rglob("*")
        if path.is_file()
    } == before
