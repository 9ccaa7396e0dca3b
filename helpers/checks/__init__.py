"""Checks that grade the book's exercises: one module per chapter (``helpers.checks.ch02`` ...), one function each.

Every check takes the learner's answer. It prints ``[label] PASS`` when the answer is right, prints
``[label] NOT DONE`` when the answer is still the student edition's placeholder (``...``), and raises
``ExerciseFailed`` with a message that says what is wrong otherwise. ``python -m helpers.exercises grade`` reads
these lines and errors back from executed notebooks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..compare import max_pixel_diff


class ExerciseFailed(AssertionError):
    """A wrong answer: the message says what was expected and what came."""


class Verdict:
    """What a check returns: true when the answer passed. A notebook shows nothing for it (the check has printed)."""

    def __init__(self, passed: bool) -> None:
        self.passed = passed

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return f"Verdict(passed={self.passed})"

    def _ipython_display_(self) -> None:
        """Nothing to display: the printed ``[label] PASS`` line is the check's output."""


def run_check(label: str, answer: Any, test: Callable[[Any], None]) -> Verdict:
    """Grade ``answer`` with ``test`` (which raises ``ExerciseFailed``); ``...`` or ``None`` means not done yet."""
    if answer is ... or answer is None:
        print(f"[{label}] NOT DONE: replace the `...` placeholder with your answer")
        return Verdict(False)
    test(answer)
    print(f"[{label}] PASS")
    return Verdict(True)


def expect(condition: bool, message: str) -> None:
    """Raise ``ExerciseFailed(message)`` unless ``condition`` holds."""
    if not condition:
        raise ExerciseFailed(message)


def _named(name: str | None) -> str:
    """The start of a message about the answer ``name`` (nothing when the answer is the only one)."""
    return f"{name}: " if name else ""


def expect_function(
    answer: Any, what: str = "a function", name: str | None = None
) -> None:
    """Raise ``ExerciseFailed`` unless ``answer`` can be called; ``what`` says which function the exercise asks for."""
    expect(
        callable(answer),
        f"{_named(name)}expected {what}, got {type(answer).__name__}",
    )


def run_function_check(
    label: str,
    answer: Any,
    test: Callable[[Any], None],
    what: str = "a function",
    name: str | None = None,
) -> Verdict:
    """``run_check`` for an answer that must be a function: one that cannot be called fails with
    ``expect_function``'s message (``what``, ``name``) before ``test`` runs."""

    def callable_then_test(function: Any) -> None:
        expect_function(function, what, name)
        test(function)

    return run_check(label, answer, callable_then_test)


def expect_tensor(
    answer: Any, shape: Iterable[int] | None = None, name: str | None = None
) -> None:
    """Raise ``ExerciseFailed`` unless ``answer`` is a torch tensor, of ``shape`` when one is given."""
    expect(
        isinstance(answer, torch.Tensor),
        f"{_named(name)}expected a torch tensor, got {type(answer).__name__}",
    )
    if shape is not None:
        expect(
            tuple(answer.shape) == tuple(shape),
            f"{_named(name)}expected shape {tuple(shape)}, got {tuple(answer.shape)}",
        )


def expect_keys(answer: Any, keys: Iterable[Any], name: str | None = None) -> None:
    """Raise ``ExerciseFailed`` unless ``answer`` is a dict with exactly the ``keys``."""
    keys = list(keys)
    expect(
        isinstance(answer, dict) and set(answer) == set(keys),
        f"{_named(name)}expected a dict with the keys {keys}, got {answer!r}",
    )


def quiet_copy(pipe: Any, pipeline_class: type | None = None, **replaced: Any) -> Any:
    """A pipeline of the same class (or ``pipeline_class``, such as the library's image to image) on the same
    components (some ``replaced``, others added), with no progress bar: a check's output is its verdict alone, and
    the caller's pipeline keeps its own settings."""
    components = {**pipe.components, **replaced}
    copy = (pipeline_class or type(pipe))(
        **components,
        **(
            {"requires_safety_checker": False} if "safety_checker" in components else {}
        ),
    )
    copy.set_progress_bar_config(disable=True)
    return copy


def expect_integer(value: Any, what: str, tensors: bool = False) -> int:
    """``value`` as an int, or ``ExerciseFailed`` unless it is a whole number: a Python int (not a bool, not a float
    such as 400.0 or a string) or, with ``tensors``, a one-element tensor of an integer dtype."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_int_tensor = (
        tensors
        and isinstance(value, torch.Tensor)
        and value.numel() == 1
        and not value.dtype.is_floating_point
        and not value.dtype.is_complex
        and value.dtype != torch.bool
    )
    shown = (
        f"{type(value).__name__} {value!r}"
        if not isinstance(value, torch.Tensor)
        else f"a {value.dtype} tensor"
    )
    expect(
        is_int or is_int_tensor,
        f"{what}: expected {'one integer' if tensors else 'a Python int'}, got {shown}",
    )
    return int(value)


def expect_number(value: Any, what: str = "a number") -> None:
    """Raise ``ExerciseFailed`` unless ``value`` is a plain int or float (a bool or a tensor is not)."""
    expect(
        isinstance(value, (int, float)) and not isinstance(value, bool),
        f"expected {what}, got {type(value).__name__} {value!r}",
    )


def expect_near(
    value: float,
    want: float,
    message: str,
    mistakes: Iterable[tuple[float, str]] = (),
    **tolerance: float,
) -> None:
    """Raise ``ExerciseFailed`` unless ``value`` is ``want`` within ``tolerance`` (``math.isclose``'s ``rel_tol`` or
    ``abs_tol``); a value that is instead one of the known ``mistakes`` (wrong value, what went wrong) gets that
    mistake's message."""
    for wrong, why in mistakes:
        expect(not math.isclose(value, wrong, **tolerance), why)
    expect(math.isclose(value, want, **tolerance), message)


def expect_explanation(text: Any, name: str = "explanation", words: int = 20) -> None:
    """Raise ``ExerciseFailed`` unless ``text`` is a string of at least ``words`` words: an open question's answer
    is read by a person (see the model answer and the rubric); the check only asks that there is one."""
    expect(
        isinstance(text, str) and len(text.split()) >= words,
        f"{name}: write a few sentences ({words} words at least) as a string",
    )


def answer_parts(*parts: Any) -> Any:
    """The parts of a many-part answer as one tuple, or ``...`` (not done) while any part is still a placeholder."""
    return ... if any(part is ... or part is None for part in parts) else parts


def expect_plain_number(value: Any, what: str) -> None:
    """``expect_number``, and not a numpy scalar: those pass for floats here but do not travel to the grader, which
    loads answers with ``torch.load(weights_only=True)``."""
    expect_number(value, what)
    expect(
        not isinstance(value, np.generic),
        f"expected {what}, got a numpy {type(value).__name__}: wrap it in float(...)",
    )


def expect_numbers(
    answer: Any,
    keys: Iterable[Any],
    name: str,
    what: str = "a float (use .item())",
    plain: bool = False,
) -> None:
    """Raise ``ExerciseFailed`` unless ``answer`` is a dict of exactly the ``keys``, each to a number (``what``):
    ``expect_number``, or with ``plain`` ``expect_plain_number`` (for answers the grader must load)."""
    keys = list(keys)
    expect_keys(answer, keys, name)
    expect_value = expect_plain_number if plain else expect_number
    for key in keys:
        expect_value(answer[key], f"{name}[{key!r}]: {what}")


def expect_picture(answer: Any, name: str) -> None:
    """Raise ``ExerciseFailed`` unless ``answer`` is a PIL image."""
    expect(
        isinstance(answer, Image.Image),
        f"{name}: expected a PIL image, got {type(answer).__name__}",
    )


def expect_same_picture(
    picture: Image.Image, expected: Image.Image, name: str, source: str, hint: str
) -> None:
    """Raise ``ExerciseFailed`` unless ``picture`` has ``expected``'s size and pixels, within 1 of 255 (a GPU's
    rounding); ``source`` says where ``expected`` comes from and ``hint`` how to get there."""
    expect(
        picture.size == expected.size,
        f"{name}: expected {expected.size} pixels, got {picture.size}",
    )
    difference = max_pixel_diff([picture], [expected])
    expect(
        difference <= 1,
        f"{name} differs from {source} by up to {difference} of 255: {hint}",
    )


def run_open_question(
    label: str, measured: Any, explanation: Any, test: Callable[[Any], None]
) -> Verdict:
    """``run_check`` for an open question: ``test`` grades the ``measured`` part, and the ``explanation`` (read by a
    person, with the rubric) must be there; either still ``...`` means not done yet."""

    def test_both(answer: tuple[Any, Any]) -> None:
        measured, text = answer
        test(measured)
        expect_explanation(text)

    return run_check(label, answer_parts(measured, explanation), test_both)
