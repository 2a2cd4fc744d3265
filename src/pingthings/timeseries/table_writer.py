"""One writer for tables of one schema going to a CSV or Parquet file, shared by every exporter.

:func:`pingthings.timeseries.export.write_csv` / ``write_parquet`` (``StreamSet.to_csv`` and
``to_parquet``) and the command line's ``pingthings query`` all write through it, so a file is
laid out the same way whichever of them wrote it.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

Sink = str | os.PathLike[str] | BinaryIO
"""A path, or a binary file object (``sys.stdout.buffer``, a socket file, ...)."""

FileFormat = Literal["csv", "parquet"]


def csv_ready(table: pa.Table) -> pa.Table:
    """Dictionary columns (the long form's ``stream``) as plain strings, which CSV needs."""
    if not any(pa.types.is_dictionary(column.type) for column in table.columns):
        return table
    columns = [c.cast(pa.string()) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    return pa.Table.from_arrays(columns, names=table.column_names)


class TableFileWriter:
    """Writes tables of one schema to ``sink``, opening the file with the first table.

    Parameters
    ----------
    sink
        Where to write.
    file_format
        ``"csv"`` (a header row, then the rows) or ``"parquet"`` (a row group per table).
    """

    def __init__(self, sink: Sink, file_format: FileFormat) -> None:
        if file_format not in ("csv", "parquet"):
            raise ValueError(f"file_format must be 'csv' or 'parquet', not {file_format!r}")
        self.sink = sink
        self.file_format = file_format
        #: Rows written so far.
        self.rows = 0
        self._writer: Any = None

    @property
    def opened(self) -> bool:
        """Whether the file was started (at least a CSV header or a Parquet schema is written)."""
        return self._writer is not None

    def write(self, table: pa.Table) -> None:
        """Append ``table``; its schema must be the first table's. An empty table only starts the file."""
        if self.file_format == "csv":
            table = csv_ready(table)
        if self._writer is None:
            opener = pacsv.CSVWriter if self.file_format == "csv" else pq.ParquetWriter
            self._writer = opener(self.sink, table.schema)
        elif table.num_rows == 0:
            return
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        """Finish the file (the Parquet footer); a writer that never opened writes nothing."""
        if self._writer is not None:
            self._writer.close()
