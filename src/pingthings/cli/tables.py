"""Plain-text tables for the terminal, used by the CLI and the demo."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any


def format_cell(value: Any, float_digits: int = 3) -> str:
    """Render one value: floats to ``float_digits`` decimals, datetimes in ISO form, None as blank."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:,.{float_digits}f}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) < 10**15 else str(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.isoformat(sep=" ", timespec="milliseconds").replace("+00:00", "Z")
    return str(value)


def _is_numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], float_digits: int = 3) -> str:
    """Lay ``rows`` out under ``headers`` in aligned columns (numbers right-aligned).

    Parameters
    ----------
    headers
        Column titles.
    rows
        One sequence per row, as long as ``headers``.
    float_digits
        Decimals shown for float values.
    """
    materialised = [list(row) for row in rows]
    cells = [[format_cell(v, float_digits) for v in row] for row in materialised]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    numeric = [
        any(_is_numeric(row[i]) for row in materialised) and all(_is_numeric(row[i]) or row[i] is None
                                                                 for row in materialised)
        for i in range(len(headers))
    ]

    def line(texts: Sequence[str]) -> str:
        parts = [t.rjust(w) if num else t.ljust(w) for t, w, num in zip(texts, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def format_records(records: Sequence[Mapping[str, Any]], float_digits: int = 3) -> str:
    """Lay out a list of dicts (e.g. SQL results) as a table; columns in first-seen key order."""
    headers: list[str] = []
    for record in records:
        for key in record:
            if key not in headers:
                headers.append(key)
    if not headers:
        return "(no rows)"
    return format_table(headers, ([record.get(h) for h in headers] for record in records), float_digits)
