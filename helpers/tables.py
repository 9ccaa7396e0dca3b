"""Tables a chapter shows: Markdown that the notebook renders, so no chapter needs pandas."""

from __future__ import annotations

from collections.abc import Sequence

from IPython.display import Markdown


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> Markdown:
    """A table that a notebook renders (``display(markdown_table(...))``), without pandas."""
    if any(len(row) != len(header) for row in rows):
        raise ValueError(
            f"every row needs {len(header)} cells, one per column of {list(header)}"
        )
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return Markdown("\n".join(lines))
