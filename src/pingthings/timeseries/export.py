"""Writing a stream set's data to CSV or Parquet with bounded memory.

The time range is cut into slices holding at most ``max_points`` points (all streams together),
planned from the streams' statistics (one cheap aligned-windows query per stream, finer where a
window holds too many points); each slice is read, written and dropped before the next is read.
So memory stays near one slice, however large the range.

The same slicing is available as :func:`iter_tables` for other writers (the command line
``query``, a web response, ...). :func:`write_generated_csv` uses the server's GenerateCSV RPC
instead, when the server's own CSV layout is wanted.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import pyarrow as pa

from pingthings._proto import v5api
from pingthings.timeseries._rpc import call_stream, decode_checked
from pingthings.timeseries._timeargs import window_kind
from pingthings.timeseries.constants import MAXIMUM_TIME
from pingthings.timeseries.table_writer import FileFormat, Sink, TableFileWriter

if TYPE_CHECKING:
    from uuid import UUID

    from pingthings.timeseries._rpc import CallTarget

VersionsArg = Any
"""Versions as the stream set's methods take them (a mapping by uuid, a sequence, or None)."""


class _Stream(Protocol):
    @property
    def client(self) -> CallTarget: ...


class ExportSource(Protocol):
    """What exporting needs of a stream set (an ``AsyncStreamSet`` is one)."""

    def __len__(self) -> int:
        """How many streams the set holds."""
        ...

    @property
    def streams(self) -> Sequence[_Stream]:
        """The streams, in order."""
        ...

    @property
    def uuids(self) -> list[UUID]:
        """The streams' UUIDs, in order."""
        ...

    async def aligned_windows(
        self, start: Any, end: Any, point_width: int, versions: Any = None,
        single_stream_schema: Any = ..., progress: bool = False,
    ) -> list[pa.Table]:
        """Aligned-window statistics of every stream."""
        ...

    async def to_arrow(
        self, start: Any = None, end: Any = None, *, form: str = "wide", width: int | None = None,
        labels: str = "uuid", versions: Any = None, sampling_frequency: float | None = None,
    ) -> pa.Table:
        """Every stream's data in ``[start, end)`` as one Table."""
        ...

__all__ = [
    "DEFAULT_MAX_POINTS",
    "iter_tables",
    "plan_slices",
    "write_csv",
    "write_generated_csv",
    "write_parquet",
]

DEFAULT_MAX_POINTS = 1_000_000
"""Points (all streams together) read per slice by default."""

_PLAN_WINDOWS = 256
"""About how many statistics windows the planner asks for per range it splits."""



def _check_max_points(max_points: Any) -> int:
    if isinstance(max_points, bool) or not isinstance(max_points, int):
        raise TypeError(f"max_points must be an int, got {type(max_points).__name__}")
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1, not {max_points}")
    return max_points


def _plan_width(lo: int, hi: int) -> int:
    """The point width giving about ``_PLAN_WINDOWS`` windows over ``[lo, hi)``."""
    span = max(1, hi - lo)
    return max(0, min(62, int(span // _PLAN_WINDOWS).bit_length()))


async def _pieces(
    aset: ExportSource, lo: int, hi: int, versions: VersionsArg, max_points: int
) -> list[tuple[int, int, int]]:
    """``(start, end, points)`` pieces covering ``[lo, hi)``, each within ``max_points`` if
    it can be split (a single nanosecond cannot)."""
    pw = _plan_width(lo, hi)
    query_end = min(MAXIMUM_TIME, hi + (1 << pw))  # the server drops a partial last window
    tables = await aset.aligned_windows(lo, query_end, pw, versions, None)
    counts: dict[int, int] = {}
    for table in tables:
        if table.num_rows == 0:
            continue
        times = table.column("time").combine_chunks().view(pa.int64()).to_numpy()
        for t, c in zip(times.tolist(), table.column("count").to_numpy().tolist(), strict=True):
            counts[t] = counts.get(t, 0) + int(c)
    pieces: list[tuple[int, int, int]] = []
    cursor = lo
    for t in sorted(counts):
        a, b = max(lo, t), min(hi, t + (1 << pw))
        if a >= b:
            continue
        if a > cursor:
            pieces.append((cursor, a, 0))
        if counts[t] > max_points and b - a > 1:
            pieces.extend(await _pieces(aset, a, b, versions, max_points))
        else:
            pieces.append((a, b, counts[t]))
        cursor = b
    if cursor < hi:
        pieces.append((cursor, hi, 0))
    return pieces


async def plan_slices(
    aset: ExportSource,
    start: int,
    end: int,
    *,
    width: int | None = None,
    versions: VersionsArg = None,
    max_points: int = DEFAULT_MAX_POINTS,
) -> list[tuple[int, int]]:
    """Cut ``[start, end)`` into consecutive slices of at most ``max_points`` points.

    Parameters
    ----------
    aset
        The streams.
    start, end
        The range, ns.
    width
        None for raw points (planned from the streams' point counts); else the statistics
        window width, and a slice holds ``max_points // len(aset)`` whole windows.
    versions
        Per-stream versions, as the stream set's reads take them.
    max_points
        The most points (or windows, all streams together) per slice.

    Returns
    -------
    list
        ``(slice_start, slice_end)`` pairs, in order, covering ``[start, end)``.
    """
    max_points = _check_max_points(max_points)
    if start >= end:
        return []
    if width is not None:
        kind, arg = window_kind(width)
        step = (1 << arg) if kind == "aligned" else arg
        per_slice = max(1, max_points // max(1, len(aset))) * step
        bounds = [*range(start, end, per_slice), end]
        return list(itertools.pairwise(bounds))
    slices: list[tuple[int, int]] = []
    run_start, run_points = start, 0
    for a, b, n in await _pieces(aset, start, end, versions, max_points):
        if run_points and run_points + n > max_points:
            slices.append((run_start, a))
            run_start, run_points = a, 0
        run_points += n
        if b == end:
            slices.append((run_start, b))
    return slices


async def iter_tables(
    aset: ExportSource,
    start: int,
    end: int,
    *,
    form: str = "wide",
    width: int | None = None,
    labels: str = "uuid",
    versions: VersionsArg = None,
    max_points: int = DEFAULT_MAX_POINTS,
) -> AsyncIterator[pa.Table]:
    """Yield :meth:`AsyncStreamSet.to_arrow` of each planned slice, in time order.

    Every table has the same schema; the first is yielded even when empty (so a writer can
    learn the schema), the later empty ones are skipped.
    """
    first = True
    for lo, hi in await plan_slices(aset, start, end, width=width, versions=versions, max_points=max_points):
        table = await aset.to_arrow(lo, hi, form=form, width=width, labels=labels, versions=versions)
        if first or table.num_rows:
            yield table
        first = False
    if first:  # an empty range: one empty table of the right shape
        yield await aset.to_arrow(start, start + 1, form=form, width=width, labels=labels, versions=versions)


async def _write_tables(
    aset: ExportSource,
    sink: Sink,
    file_format: FileFormat,
    start: int,
    end: int,
    *,
    form: str,
    width: int | None,
    labels: str,
    versions: VersionsArg,
    max_points: int,
) -> int:
    """Write every slice of :func:`iter_tables` through a :class:`TableFileWriter`; returns the rows."""
    writer = TableFileWriter(sink, file_format)
    try:
        async for table in iter_tables(
            aset, start, end, form=form, width=width, labels=labels, versions=versions, max_points=max_points
        ):
            await anyio.to_thread.run_sync(writer.write, table)
    finally:
        await anyio.to_thread.run_sync(writer.close)
    return writer.rows


async def write_csv(
    aset: ExportSource,
    sink: Sink,
    start: int,
    end: int,
    *,
    form: str = "wide",
    width: int | None = None,
    labels: str = "uuid",
    versions: VersionsArg = None,
    max_points: int = DEFAULT_MAX_POINTS,
) -> int:
    """Write the data as CSV (header row first), one slice at a time; returns the rows written.

    ``time`` is written as an ISO 8601 UTC timestamp with nanoseconds; NaN where a stream has
    no value (wide form).
    """
    return await _write_tables(aset, sink, "csv", start, end, form=form, width=width, labels=labels,
                               versions=versions, max_points=max_points)


async def write_parquet(
    aset: ExportSource,
    sink: Sink,
    start: int,
    end: int,
    *,
    form: str = "wide",
    width: int | None = None,
    labels: str = "uuid",
    versions: VersionsArg = None,
    max_points: int = DEFAULT_MAX_POINTS,
) -> int:
    """Write the data as one Parquet file (a row group per slice); returns the rows written."""
    return await _write_tables(aset, sink, "parquet", start, end, form=form, width=width, labels=labels,
                               versions=versions, max_points=max_points)


async def write_generated_csv(
    aset: ExportSource,
    sink: Sink,
    start: int,
    end: int,
    *,
    width: int | None = None,
    labels: Sequence[str],
    versions: Sequence[int],
    include_versions: bool = False,
) -> int:
    """Write the CSV the server makes with its GenerateCSV RPC; returns the data rows written.

    The server chooses the layout (``Timestamp (ns)``, ``Human-Readable Time (UTC)``, then one
    column per stream, or ``(Min)``, ``(Mean)``, ``(Max)``, ``(Count)`` columns with ``width``).
    Rows are written as they arrive.

    Raises
    ------
    NotImplementedByServerError
        When the server does not offer GenerateCSV.
    """
    if width is None:
        query_type, window, depth = v5api.GenerateCsvParamsQueryType.RAW_QUERY, 0, 0
    else:
        kind, arg = window_kind(width)
        if kind == "aligned":
            query_type, window, depth = v5api.GenerateCsvParamsQueryType.ALIGNED_WINDOWS_QUERY, 0, arg
        else:
            query_type, window, depth = v5api.GenerateCsvParamsQueryType.WINDOWS_QUERY, arg, 0
    request = v5api.GenerateCsvParams(
        query_type=query_type,
        start_time=start,
        end_time=end,
        window_size=window,
        depth=depth,
        include_versions=include_versions,
        streams=[
            v5api.StreamCsvConfig(version=v, label=label, uuid=u.bytes)
            for u, label, v in zip(aset.uuids, labels, versions, strict=True)
        ],
    )
    client = aset.streams[0].client
    own_file = not hasattr(sink, "write")
    out: Any = open(sink, "wb") if own_file else sink  # type: ignore[arg-type]  # noqa: SIM115
    rows = 0
    try:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        async with call_stream(client, "GenerateCSV", request) as messages:
            async for payload in messages:
                message = decode_checked(payload, v5api.GenerateCsvResponse)
                writer.writerow(message.row)
                rows += 0 if message.is_header else 1
                if text.tell() > 1 << 20:
                    await anyio.to_thread.run_sync(out.write, text.getvalue().encode())
                    text.seek(0)
                    text.truncate()
        await anyio.to_thread.run_sync(out.write, text.getvalue().encode())
    finally:
        if own_file:
            out.close()
    return rows
