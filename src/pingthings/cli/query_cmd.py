"""``pingthings query``: raw values or window statistics of streams, written as CSV or Parquet."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pa_parquet

from pingthings.cli.connection import ConnectionOptions, open_client, resolve_stream
from pingthings.cli.errors import EXIT_USAGE, UserError
from pingthings.cli.params import DURATION, POINT_WIDTH, TIME
from pingthings.wire.limits import MIN_TIME, TIME_LIMIT

if TYPE_CHECKING:
    from pingthings.timeseries import Stream

FORMATS = ("csv", "parquet")


def _pick_format(output: str, requested: str | None) -> str:
    if requested:
        return requested
    suffix = Path(output).suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".csv", "") or output == "-":
        return "csv"
    raise UserError(f"cannot tell the format of {output!r}: name it .csv or .parquet, or pass --format",
                    EXIT_USAGE)


def fetch_table(stream: Stream, start: int, end: int, version: int,
                point_width: int | None, width: int | None) -> pa.Table:
    """Raw values, aligned windows (``point_width``) or precise windows (``width`` ns) of one stream.

    Window statistics keep the server's float64 precision (``schema=None``).
    """
    if point_width is not None:
        return stream.aligned_windows(start, end, point_width, version=version, schema=None)
    if width is not None:
        return stream.precise_windows(start, end, width, version=version, schema=None)
    return stream.raw_values(start, end, version=version)


def _with_time_as_ns(table: pa.Table) -> pa.Table:
    index = table.schema.get_field_index("time")
    return table.set_column(index, "time", table.column("time").cast(pa.int64()))


def write_table(table: pa.Table, output: str, fmt: str) -> None:
    """Write ``table`` to ``output`` (``-`` = stdout, CSV only) in ``fmt``."""
    if fmt == "parquet":
        if output == "-":
            raise UserError("Parquet needs a file: pass -o FILE.parquet", EXIT_USAGE)
        pa_parquet.write_table(table, output)
    elif output == "-":
        pa_csv.write_csv(table, sys.stdout.buffer)
        sys.stdout.flush()
    else:
        pa_csv.write_csv(table, output)


@click.command()
@click.argument("streams", nargs=-1, required=True, metavar="STREAM...")
@click.option("--start", type=TIME, default=None,
              help="First time included: ISO 8601 (UTC if no zone), integer ns or 'now'. Default: earliest.")
@click.option("--end", type=TIME, default=None,
              help="First time excluded. Default: the end of the time axis.")
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
@click.pass_obj
def query(options: ConnectionOptions, streams: tuple[str, ...], start: int | None, end: int | None,
          point_width: int | None, width: int | None, version: int, output: str, fmt: str | None,
          time_ns: bool) -> None:
    """Read raw values (default) or window statistics of STREAM (a UUID or COLLECTION/NAME).

    With several streams the output gains a leading `uuid` column (long format).
    """
    if point_width is not None and width is not None:
        raise UserError("choose either --pw or --window, not both", EXIT_USAGE)
    start = MIN_TIME if start is None else start
    end = TIME_LIMIT - 1 if end is None else end
    if start >= end:
        raise UserError("--start must be before --end", EXIT_USAGE)
    fmt = _pick_format(output, fmt)
    with open_client(options) as client:
        resolved = [resolve_stream(client, identifier) for identifier in streams]
        tables = []
        for stream in resolved:
            table = fetch_table(stream, start, end, version, point_width, width)
            if len(resolved) > 1:
                uuids = pa.array([str(stream.uuid)] * table.num_rows, pa.string())
                table = table.add_column(0, "uuid", uuids)
            tables.append(table)
    result = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    if time_ns:
        result = _with_time_as_ns(result)
    write_table(result, output, fmt)
    if output != "-":
        click.echo(f"wrote {result.num_rows:,} rows to {output}", err=True)
