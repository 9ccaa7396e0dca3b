"""Tables a chapter shows: markdown_table."""

from __future__ import annotations

import pytest

from helpers.tables import markdown_table


def test_markdown_table_renders_header_rule_and_rows():
    table = markdown_table(["switch", "seconds"], [["`a`", 1.5], ["b", "2"]])
    assert table.data.splitlines() == [
        "| switch | seconds |",
        "| --- | --- |",
        "| `a` | 1.5 |",
        "| b | 2 |",
    ]
    with pytest.raises(ValueError, match="every row needs 2 cells"):
        markdown_table(["switch", "seconds"], [["only one"]])
