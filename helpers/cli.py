"""Pieces the course's command lines share."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def whole_number_at_least_1(why: str) -> Callable[[str], int]:
    """An argparse ``type`` for a count or a limit: a whole number above 0; ``why`` ends the message for 0 or less."""

    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number, got {text!r}"
            ) from None
        if number < 1:
            raise argparse.ArgumentTypeError(f"must be at least 1, got {number}: {why}")
        return number

    return parse


def add_count_option(
    parser: argparse.ArgumentParser, flag: str, default: int, what: str, why: str
) -> None:
    """Add ``flag``, a whole number of at least 1 (``why`` ends the message for 0 or less), whose help says
    ``what`` it counts and its default."""
    parser.add_argument(
        flag,
        type=whole_number_at_least_1(why),
        default=default,
        help=f"{what} (default {default})",
    )


def add_training_folders(
    parser: argparse.ArgumentParser, quick_folder: str, out_help: str
) -> None:
    """The options every training command shares: ``--quick`` (into its own work folder ``quick_folder`` under
    ``~/.cache/sd-book``, so it never touches a full run's checkpoints), ``--out`` and ``--workdir``."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a few steps, into its own folders (~/.cache/sd-book/{quick_folder}): "
        "it never touches a full run's checkpoints",
    )
    parser.add_argument("--out", type=Path, help=out_help)
    parser.add_argument(
        "--workdir", type=Path, help="checkpoint folder (default: ~/.cache/sd-book/...)"
    )
