"""Checks that grade the book's exercises: one module per chapter (``helpers.checks.ch02`` ...), one function each.

Every check takes the learner's answer. It prints ``[label] PASS`` when the answer is right, prints
``[label] NOT DONE`` when the answer is still the student edition's placeholder (``...``), and raises
``ExerciseFailed`` with a message that says what is wrong otherwise. ``python -m helpers.exercises grade`` reads
these lines and errors back from executed notebooks.
"""

from __future__ import annotations

from typing import Any, Callable


class ExerciseFailed(AssertionError):
    """A wrong answer: the message says what was expected and what came."""


def run_check(label: str, answer: Any, test: Callable[[Any], None]) -> bool:
    """Grade ``answer`` with ``test`` (which raises ``ExerciseFailed``); ``...`` or ``None`` means not done yet."""
    if answer is ... or answer is None:
        print(f"[{label}] NOT DONE: replace the `...` placeholder with your answer")
        return False
    test(answer)
    print(f"[{label}] PASS")
    return True


def expect(condition: bool, message: str) -> None:
    """Raise ``ExerciseFailed(message)`` unless ``condition`` holds."""
    if not condition:
        raise ExerciseFailed(message)
