"""Answers travel from the student's run to the grading run as data: values come back equal, functions come back
defined (never run) and only when they keep to arithmetic, and nothing else comes back at all."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.answers import load_answers, save_answers, screened
from helpers.checks import ExerciseFailed

SCALE = 255.0


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b) ** 2))


def psnr(picture: np.ndarray, reference: np.ndarray) -> float:
    """A function answer that calls another notebook function and uses a module and a constant of the notebook."""
    return 10 * math.log10(SCALE**2 / mse(picture, reference))


def round_trip(
    tmp_path: Path, namespace: dict, names: list[str], reference: dict | None = None
) -> dict:
    save_answers(str(tmp_path / "answer"), namespace, names)
    return load_answers(str(tmp_path / "answer"), names, reference or {})


def test_values_come_back_equal(tmp_path):
    picture = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    namespace = {
        "shape": (3, 4, 8, 16),
        "size": torch.Size([1, 4]),
        "latents": torch.randn(2, 4, 3, 3),
        "array": np.arange(6, dtype=np.int16).reshape(2, 3),
        "picture": picture,
        "share": np.float32(0.25),
        "nested": {"ids": [49406, 320], "ok": True, "none": None, "steps": (10, 25)},
    }
    back = round_trip(tmp_path, namespace, list(namespace))
    assert back["shape"] == (3, 4, 8, 16) and isinstance(back["shape"], tuple)
    assert back["size"] == torch.Size([1, 4]) and isinstance(back["size"], torch.Size)
    assert torch.equal(back["latents"], namespace["latents"])
    assert back["array"].dtype == np.int16 and np.array_equal(
        back["array"], namespace["array"]
    )
    assert back["picture"].mode == "RGB" and np.array_equal(
        np.asarray(back["picture"]), np.asarray(picture)
    )
    assert back["share"] == np.float32(0.25) and isinstance(back["share"], np.float32)
    assert back["nested"] == namespace["nested"]


def test_placeholders_write_nothing_and_load_as_not_done(tmp_path):
    save_answers(
        str(tmp_path / "answer"), {"low": ..., "high": None}, ["low", "high", "missing"]
    )
    assert not (tmp_path / "answer").exists()
    assert load_answers(str(tmp_path / "answer"), ["low", "high"], {}) == {
        "low": ...,
        "high": ...,
    }


def test_a_function_comes_back_with_the_notebook_code_it_uses(tmp_path, monkeypatch):
    monkeypatch.setattr(
        mse, "__module__", "__main__"
    )  # as if defined in a notebook cell
    namespace = {"psnr": psnr, "mse": mse, "np": np, "math": math, "SCALE": SCALE}
    back = round_trip(tmp_path, namespace, ["psnr"], reference={"np": np})["psnr"]
    zeros, tens = np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 10, np.uint8)
    assert back is not psnr and back(tens, zeros) == pytest.approx(psnr(tens, zeros))


def test_a_value_that_cannot_travel_fails_its_exercise(tmp_path):
    with pytest.raises(
        ExerciseFailed,
        match="`generator` holds a Generator, which the grader cannot carry",
    ):
        round_trip(tmp_path, {"generator": torch.Generator()}, ["generator"])


@pytest.mark.parametrize(
    "source, why",
    [
        (
            "def f(x):\n    import helpers.checks\n    return x",
            "uses the module helpers.checks",
        ),
        ("def f(x):\n    return helpers.checks", "uses `helpers`"),
        (
            "def f(x):\n    torch.allclose = lambda *a, **k: True\n    return x",
            "changes an object it did not make",
        ),
        ("def f(x):\n    return getattr(x, 'y')", "uses `getattr`"),
        ("def f(x):\n    return f.__globals__", "uses the attribute `.__globals__`"),
        (
            "def f(x):\n    global g\n    return x",
            "declares `global` or `nonlocal` names",
        ),
        (
            "def f(x, y=print('hi')):\n    return x",
            "a default value that is not a constant",
        ),
        ("@cache\ndef f(x):\n    return x", "one plain `def`"),
        ("def f(x):\n    import os\n    return x", "uses the module os"),
        ("f = 1\ndef g(x):\n    return x", "one plain `def`"),
    ],
)
def test_the_screen_refuses_a_function_that_reaches_beyond_arithmetic(source, why):
    with pytest.raises(ExerciseFailed, match=re.escape(why)):
        screened(source, "answer")


def test_the_screen_takes_plain_arithmetic_and_its_own_variables():
    source = (
        "def f(a: np.ndarray, b=2.0, *, axis=(0, 1)) -> float:\n    out = np.zeros(3)\n    out[0] = a.sum()\n"
        "    return float((out * b).mean(axis=axis[0]))"
    )
    tree = screened(source, "answer")
    assert (
        tree.body[0].args.args[0].annotation is None and tree.body[0].returns is None
    )  # nothing runs at def time
    assert (
        screened("square = lambda x: x * x", "answer").body[0].targets[0].id == "square"
    )
