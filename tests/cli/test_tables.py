"""Plain-text tables used by the CLI and the demo."""

from __future__ import annotations

from datetime import UTC, datetime

from pingthings.cli.tables import format_cell, format_records, format_table


def test_columns_line_up_and_numbers_align_right() -> None:
    text = format_table(["name", "value"], [("a", 1.5), ("longer", 1234.25)], float_digits=2)
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("name") and lines[1].startswith("------")
    # right-aligned numbers end in the same column
    assert lines[2].endswith("1.50") and lines[3].endswith("1,234.25")
    assert len(lines[2]) == len(lines[3])


def test_cells() -> None:
    assert format_cell(None) == ""
    assert format_cell(True) == "true"
    assert format_cell(1234567) == "1,234,567"
    assert format_cell(datetime(2024, 6, 1, 12, tzinfo=UTC)) == "2024-06-01 12:00:00.000Z"


def test_records_take_keys_in_first_seen_order() -> None:
    text = format_records([{"b": 1, "a": "x"}, {"a": "y", "c": None}])
    header = text.splitlines()[0].split()
    assert header == ["b", "a", "c"]
    assert format_records([]) == "(no rows)"
