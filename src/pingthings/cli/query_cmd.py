"""``pingthings query``: raw values or window statistics of streams, written as CSV or Parquet.

Results are written chunk by chunk as the server sends them, so exporting a long range needs no
more memory than one server message.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click
import pyarrow as pa

from pingthings.cli.connection import ConnectionOptions, open_client, resolve_stream
from pingthings.cli.errors import EXIT_USAGE, UserError
from pingthings.cli.options import command_options
from pingthings.cli.params import DURATION, POINT_WIDTH, TIME
from pingthings.timeseries.table_writer import Sink, TableFileWriter
from pingthings.wire.limits import MIN_TIME, TIME_LIMIT

if TYPE_CHECKING:
    from pingthings.timeseries import Stream

FORMATS = ("csv", "parquet")


def pick_format(output: str, requested: str | None) -> str:
    """The output format: as requested, else from the file suffix (stdout is CSV)."""
    if requested:
        return requested
    suffix = Path(output).suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".csv" or output == "-":
        return "csv"
    raise UserError(f"cannot tell the format of {output!r}: name it .csv or .parquet, or pass --format",
                    EXIT_USAGE)


def iter_tables(stream: Stream, start: int, end: int, version: int,
                point_width: int | None, width: int | None) -> Iterator[pa.Table]:
    """Raw values, aligned windows (``point_width``) or precise windows (``width`` ns), chunk by chunk.

    Window statistics keep the server's float64 precision (``schema=None``).
    """
    if point_width is not None:
        return stream.aligned_windows_iter(start, end, point_width, version=version, schema=None)
    if width is not None:
        return stream.precise_windows_iter(start, end, width, version=version, schema=None)
    return stream.raw_values_iter(start, end, version=version)


def empty_table(stream: Stream, start: int, end: int, version: int,
                point_width: int | None, width: int | None) -> pa.Table:
    """The (empty) result of the same query, for its schema when no chunk arrived."""
    if point_width is not None:
        return stream.aligned_windows(start, end, point_width, version=version, schema=None)
    if width is not None:
        return stream.precise_windows(start, end, width, version=version, schema=None)
    return stream.raw_values(start, end, version=version)


class TableSink:
    """The output of ``query``: tables of one schema to a CSV or Parquet file, or CSV on stdout.

    The file is written by :class:`pingthings.timeseries.table_writer.TableFileWriter`, the
    writer ``StreamSet.to_csv``/``to_parquet`` use too.
    """

    def __init__(self, output: str, fmt: str, time_ns: bool) -> None:
        if fmt == "parquet" and output == "-":
            raise UserError("Parquet needs a file: pass -o FILE.parquet", EXIT_USAGE)
        self.output = output
        self.time_ns = time_ns
        target: Sink = sys.stdout.buffer if output == "-" else output
        self._file = TableFileWriter(target, "parquet" if fmt == "parquet" else "csv")

    @property
    def rows(self) -> int:
        """Rows written so far."""
        return self._file.rows

    @property
    def opened(self) -> bool:
        """Whether anything (at least a header) was written."""
        return self._file.opened

    def write(self, table: pa.Table) -> None:
        """Append ``table`` (its schema must match the first one's)."""
        if self.time_ns:
            index = table.schema.get_field_index("time")
            table = table.set_column(index, "time", table.column("time").cast(pa.int64()))
        self._file.write(table)

    def close(self) -> None:
        """Finish the file (Parquet footer) and flush stdout."""
        self._file.close()
        if self.output == "-":
            sys.stdout.flush()


def data_range(streams: list[Stream], version: int) -> tuple[int, int] | None:
    """``[earliest, latest + 1)`` over every stream's points, or None when they hold none."""
    firsts = [p.time for p in (s.earliest(version) for s in streams) if p is not None]
    lasts = [p.time for p in (s.latest(version) for s in streams) if p is not None]
    if not firsts or not lasts:
        return None
    return min(firsts), max(lasts) + 1


def whole_windows_end(start: int, after_last: int, point_width: int | None, width: int | None) -> int:
    """The end at or after ``after_last`` at which the windows of the query end.

    Aligned windows end on multiples of ``2**point_width``; precise windows on ``start + k*width``.
    The server drops a last window that ``end`` would cut, so ``end`` is rounded up to a boundary.
    """
    if point_width is not None:
        size = 1 << point_width
        return -(-after_last // size) * size
    assert width is not None
    return start + -(-(after_last - start) // width) * width


def _labelled(table: pa.Table, stream: Stream) -> pa.Table:
    return table.add_column(0, "uuid", pa.array([str(stream.uuid)] * table.num_rows, pa.string()))


@click.command()
@click.argument("streams", nargs=-1, required=True, metavar="STREAM...")
@click.option("--start", type=TIME, default=None,
              help="First time included: ISO 8601 (UTC if no zone), integer ns or 'now'. "
                   "Default: the first point (with --pw/--window) or the start of the time axis.")
@click.option("--end", type=TIME, default=None,
              help="First time excluded. Default: just after the last point (with --pw/--window) "
                   "or the end of the time axis.")
@click.option("--pw", "point_width", type=POINT_WIDTH, default=None,
              help="Aligned-window statistics with windows of 2**PW ns (fast: read from the tree).")
@click.option("--window", "width", type=DURATION, default=None,
              help="Window statistics with windows of exactly this length, e.g. 1s, 500ms, 5m.")
@click.option("--version", type=click.IntRange(min=0), default=0, show_default=True,
              help="Data version to read (0 = latest).")
@click.option("-o", "--output", default="-", show_default=True, help="File to write; '-' is stdout (CSV).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Output format (default: from the file suffix).")
@click.option("--time-ns", is_flag=True, help="Write times as integer nanoseconds instead of timestamps.")
@command_options
@click.pass_obj
def query(options: ConnectionOptions, streams: tuple[str, ...], start: int | None, end: int | None,
          point_width: int | None, width: int | None, version: int, output: str, fmt: str | None,
          time_ns: bool) -> None:
    """Read raw values (default) or window statistics of STREAM (a UUID or COLLECTION/NAME).

    With several streams the output gains a leading `uuid` column (long format).
    """
    if point_width is not None and width is not None:
        raise UserError("choose either --pw or --window, not both", EXIT_USAGE)
    if start is not None and end is not None and start >= end:
        raise UserError("--start must be before --end", EXIT_USAGE)
    sink = TableSink(output, pick_format(output, fmt), time_ns)
    with open_client(options) as client:
        resolved = [resolve_stream(client, identifier) for identifier in streams]
        several = len(resolved) > 1
        windowed = point_width is not None or width is not None
        if windowed and (start is None or end is None):  # windows over the data, not the whole axis
            span = data_range(resolved, version)
            first, after_last = span if span is not None else (MIN_TIME, MIN_TIME + 1)
            start = first if start is None else start
            if end is None:  # so that the last window holds the last point
                end = min(whole_windows_end(start, after_last, point_width, width), TIME_LIMIT - 1)
        start = MIN_TIME if start is None else start
        end = TIME_LIMIT - 1 if end is None else end
        if start >= end:
            raise UserError("--start must be before --end (and the data in range)", EXIT_USAGE)
        try:
            for stream in resolved:
                for table in iter_tables(stream, start, end, version, point_width, width):
                    sink.write(_labelled(table, stream) if several else table)
            if not sink.opened:
                table = empty_table(resolved[0], start, end, version, point_width, width)
                sink.write(_labelled(table, resolved[0]) if several else table)
        finally:
            sink.close()
    if output != "-":
        click.echo(f"wrote {sink.rows:,} rows to {output}", err=True)
