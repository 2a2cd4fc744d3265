"""GenerateCSV row messages written by hand read back the same in both protobuf decoders."""

from __future__ import annotations

import btrdb.grpcinterface.btrdb_pb2 as official
import pytest

from pingthings._proto import v5api
from pingthings.wire.csv_rows import encode_csv_row

ROWS = [
    (["Timestamp (ns)", "Human-Readable Time (UTC)", "a", "b (Min)"], True),
    (["5", "1970-01-01T00:00:00Z", "", "1.000000"], False),
    (["", "", ""], False),
    ([], False),
    (["ünïcode ✓ label", "x" * 127, "y" * 128, "z" * 70_000], False),
]


@pytest.mark.parametrize(("cells", "header"), ROWS)
def test_a_row_reads_back_in_both_decoders(cells: list[str], header: bool) -> None:
    data = encode_csv_row(cells, is_header=header)
    ours = v5api.GenerateCsvResponse.parse(data)
    theirs = official.GenerateCSVResponse.FromString(data)
    assert (list(ours.row), ours.is_header, ours.stat) == (cells, header, None)
    assert (list(theirs.row), theirs.isHeader, theirs.HasField("stat")) == (cells, header, False)


@pytest.mark.parametrize(("cells", "header"), ROWS)
def test_the_bytes_are_what_a_protobuf_encoder_writes(cells: list[str], header: bool) -> None:
    expected = official.GenerateCSVResponse(isHeader=header, row=cells).SerializeToString()
    assert encode_csv_row(cells, is_header=header) == expected
