"""Text the demo prints: headings, stream listings and result tables built from pyarrow Tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from pingthings.cli.tables import format_records, format_table
from pingthings.demo.plot import Envelope
from pingthings.demo.substation import StreamSpec

__all__ = [
    "combine_windows",
    "duration",
    "envelope",
    "format_joined",
    "format_raw",
    "format_records",
    "format_streams",
    "format_summary",
    "format_table",
    "heading",
]


def heading(text: str) -> str:
    """A section title with a rule under it, preceded by a blank line."""
    return f"\n{text}\n{'─' * len(text)}"


def duration(ns: int) -> str:
    """A duration in the largest unit that keeps it readable: ``1.07 s``, ``268 ms``, ``2.3 min``."""
    for unit, size in (("h", 3_600e9), ("min", 60e9), ("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= size:
            value = ns / size
            return f"{value:.3g} {unit}"
    return f"{ns} ns"


def _times_ns(table: pa.Table) -> np.ndarray:
    return np.asarray(table.column("time").cast(pa.int64()).to_numpy(), dtype=np.int64)


def _timestamp(ns: int) -> str:
    moment = datetime.fromtimestamp(ns // 1_000_000_000, UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{ns % 1_000_000_000:09d}Z"


def format_streams(specs: Sequence[StreamSpec]) -> str:
    """One row per stream: collection, name, what it measures, unit."""
    rows = [(s.device.collection, s.name, f"phase {s.phase} {s.quantity} {s.kind}", s.unit.name)
            for s in specs]
    return format_table(["collection", "name", "measures", "unit"], rows)


def combine_windows(table: pa.Table | None) -> dict[str, float]:
    """Fold window statistics into one: total count, overall min/max, count-weighted mean."""
    if table is None or table.num_rows == 0:
        return {"count": 0.0, "min": float("nan"), "mean": float("nan"), "max": float("nan")}
    counts = np.asarray(table.column("count").to_numpy(), dtype=np.float64)
    means = np.asarray(table.column("mean").to_numpy(), dtype=np.float64)
    return {
        "count": float(counts.sum()),
        "min": float(np.min(table.column("min").to_numpy())),
        "mean": float((counts * means).sum() / counts.sum()),
        "max": float(np.max(table.column("max").to_numpy())),
    }


def format_summary(specs: Sequence[StreamSpec], summary: dict[str, dict[str, float]]) -> str:
    """The whole-range statistics table: stream, unit, points, min, mean, max."""
    rows = []
    for spec in specs:
        stats = summary[spec.label]
        rows.append((spec.label, spec.unit.symbol, int(stats["count"]),
                     stats["min"], stats["mean"], stats["max"]))
    return format_table(["stream", "unit", "points", "min", "mean", "max"], rows, float_digits=2)


def format_raw(table: pa.Table, unit: str) -> str:
    """Raw (time, value) rows with nanosecond timestamps."""
    times = _times_ns(table)
    values = table.column("value").to_numpy()
    rows = [(_timestamp(int(t)), float(v)) for t, v in zip(times, values, strict=True)]
    return format_table(["time (UTC)", f"value ({unit})"], rows, float_digits=2)


def format_joined(table: pa.Table, labels: dict[str, str]) -> str:
    """A table joined on time (``time`` plus one column per stream); NaN (no point there) shows blank.

    ``labels`` maps a column name to the heading shown for it.
    """
    columns = [name for name in table.column_names if name != "time"]
    values = [np.asarray(table.column(name).to_numpy(), dtype=np.float64) for name in columns]
    rows = [
        [_timestamp(int(t)), *(None if np.isnan(col[i]) else float(col[i]) for col in values)]
        for i, t in enumerate(_times_ns(table))
    ]
    return format_table(["time (UTC)", *(labels.get(name, name) for name in columns)], rows, float_digits=2)


def envelope(label: str, unit: str, table: pa.Table) -> Envelope:
    """An :class:`Envelope` (for the plot) from a window-statistics table."""
    return Envelope(
        label=label,
        unit=unit,
        times_ns=_times_ns(table),
        minimum=np.asarray(table.column("min").to_numpy(), dtype=np.float64),
        mean=np.asarray(table.column("mean").to_numpy(), dtype=np.float64),
        maximum=np.asarray(table.column("max").to_numpy(), dtype=np.float64),
    )
