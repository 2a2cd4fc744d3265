"""Test data and numpy oracles for the stream tests."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pyarrow as pa

from pingthings.timeseries.async_client import AsyncClient
from pingthings.timeseries.async_stream import AsyncStream

#: 2020-01-01T00:00:00Z in ns: test data lives around here.
T0 = 1_577_836_800_000_000_000


async def new_stream(
    client: AsyncClient, collection: str, name: str | None = None, **tags: str
) -> AsyncStream:
    """Create a stream with a fresh UUID (and a unique name unless given)."""
    tags = {"name": name or f"s_{uuid.uuid4().hex[:10]}", **tags}
    return await client.create(uuid.uuid4(), collection, tags)


def random_points(
    n: int, seed: int = 0, start: int = T0, spacing: int = 1_000_000, unique: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points with random (unique, unsorted) times at about ``spacing`` ns apart."""
    rng = np.random.default_rng(seed)
    if unique:
        times = start + rng.choice(n * 4, size=n, replace=False).astype(np.int64) * (spacing // 4 or 1)
    else:
        times = start + rng.integers(0, n * spacing, size=n, dtype=np.int64)
    values = rng.normal(50.0, 10.0, size=n)
    return times, values


def sorted_points(times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(times, kind="stable")
    return times[order], values[order]


def table_columns(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """``(int64 times, float64 values)`` of a raw-values Table."""
    t = table.column("time").combine_chunks().view(pa.int64()).to_numpy(zero_copy_only=False)
    v = table.column("value").combine_chunks().to_numpy(zero_copy_only=False)
    return np.asarray(t), np.asarray(v)


def stat_columns(table: pa.Table) -> dict[str, np.ndarray]:
    """Every column of a statistics Table as numpy (``time`` as int64 ns)."""
    out: dict[str, np.ndarray] = {}
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        if pa.types.is_timestamp(col.type):
            col = col.view(pa.int64())
        out[name] = np.asarray(col.to_numpy(zero_copy_only=False))
    return out


def window_stats(times: np.ndarray, values: np.ndarray, starts: np.ndarray, width: int) -> dict[str, Any]:
    """Oracle: statistics of the points in ``[s, s + width)`` for each window start ``s``."""
    mins, means, maxs, counts, stds = [], [], [], [], []
    for s in starts:
        sel = values[(times >= s) & (times < s + width)]
        counts.append(sel.size)
        if sel.size:
            mins.append(sel.min())
            means.append(sel.mean())
            maxs.append(sel.max())
            stds.append(sel.std())
        else:
            mins.append(0.0)
            means.append(0.0)
            maxs.append(0.0)
            stds.append(0.0)
    return {
        "time": np.asarray(starts, dtype=np.int64),
        "min": np.array(mins),
        "mean": np.array(means),
        "max": np.array(maxs),
        "count": np.array(counts, dtype=np.uint64),
        "stddev": np.array(stds),
    }


def aligned_oracle(times: np.ndarray, values: np.ndarray, start: int, end: int, pw: int) -> dict[str, Any]:
    """Oracle for AlignedWindows: non-empty windows of ``2**pw`` between the rounded-down bounds."""
    width = 1 << pw
    lo, hi = (start >> pw) << pw, (end >> pw) << pw
    sel = (times >= lo) & (times < hi)
    starts = np.unique((times[sel] >> pw) << pw)
    return window_stats(times, values, starts, width)


def precise_oracle(times: np.ndarray, values: np.ndarray, start: int, end: int, width: int) -> dict[str, Any]:
    """Oracle for Windows: every window ``[start + k*width, ...)`` up to the truncated end."""
    n = (end - start) // width
    starts = start + np.arange(n, dtype=np.int64) * width
    return window_stats(times, values, starts, width)


def assert_stats_equal(got: dict[str, np.ndarray], want: dict[str, Any], rtol: float = 1e-9) -> None:
    """Compare a statistics result to an oracle (times and counts exactly, the rest closely)."""
    np.testing.assert_array_equal(got["time"], want["time"])
    np.testing.assert_array_equal(got["count"], want["count"])
    for key in ("min", "mean", "max"):
        np.testing.assert_allclose(got[key], want[key], rtol=rtol, atol=1e-9, err_msg=key)
    np.testing.assert_allclose(
        got["stddev"], want["stddev"], rtol=max(rtol, 1e-7), atol=1e-7, err_msg="stddev"
    )


def assert_tables_equal(got: pa.Table, want: pa.Table) -> None:
    """Same schema and the same values column by column (NaN equal to NaN)."""
    assert got.schema.equals(want.schema), (got.schema, want.schema)
    for name in want.column_names:
        a, b = got.column(name).combine_chunks(), want.column(name).combine_chunks()
        if pa.types.is_timestamp(a.type):
            a, b = a.view(pa.int64()), b.view(pa.int64())
        np.testing.assert_array_equal(
            a.to_numpy(zero_copy_only=False), b.to_numpy(zero_copy_only=False), err_msg=name
        )
