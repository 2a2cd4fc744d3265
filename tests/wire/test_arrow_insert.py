"""Small ArrowInsert payloads written and read around pyarrow: the same bytes, the same points."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from pingthings.wire import arrow as wire_arrow
from pingthings.wire import arrow_insert

T0 = 1_700_000_000 * 10**9


def points(rows: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(rows)
    times = T0 + np.arange(rows, dtype=np.int64) * 8_333_333 + rng.integers(-2000, 2001, rows)
    return times, np.round(rng.normal(7200, 3, rows), 3)


@pytest.mark.parametrize("rows", [0, 1, 2, 3, 120, 1000, arrow_insert.MAX_ROWS, arrow_insert.MAX_ROWS + 1])
def test_encode_writes_what_pyarrow_writes(rows: int) -> None:
    times, values = points(rows)
    assert arrow_insert.encode(times, values) == wire_arrow.table_to_ipc(wire_arrow.raw_table(times, values))


@pytest.mark.parametrize("as_view", [False, True])
@pytest.mark.parametrize("rows", [1, 7, 120, arrow_insert.MAX_ROWS])
def test_decode_reads_what_encode_wrote(rows: int, as_view: bool) -> None:
    times, values = points(rows)
    values[0] = -0.0
    payload = arrow_insert.encode(times, values)
    decoded = arrow_insert.decode(memoryview(payload) if as_view else payload)
    assert decoded is not None
    np.testing.assert_array_equal(decoded[0], times)
    assert decoded[1].view(np.int64).tolist() == values.view(np.int64).tolist()  # bit for bit


def _ipc(table: pa.Table) -> bytes:
    return wire_arrow.table_to_ipc(table)


def test_decode_leaves_every_other_payload_to_pyarrow() -> None:
    times, values = points(120)
    ours = arrow_insert.encode(times, values)
    others = {
        "int64 times": _ipc(pa.table({"time": times, "value": values})),
        "other names": _ipc(wire_arrow.raw_table(times, values).rename_columns(["t", "v"])),
        "float32 values": _ipc(
            pa.table({"time": wire_arrow.time_array(times), "value": values.astype(np.float32)})
        ),
        "nulls": _ipc(
            pa.table({"time": wire_arrow.time_array(times), "value": pa.array([None, *values[1:]])})
        ),
        "two batches": _ipc(
            pa.Table.from_batches(wire_arrow.raw_table(times, values).to_batches(max_chunksize=60))
        ),
        "truncated": ours[:-8],
        "one byte more": ours + b"\0",
        "a changed length": ours.replace((120).to_bytes(8, "little"), (121).to_bytes(8, "little"), 1),
        "empty": b"",
        "garbage": b"\xff" * len(ours),
    }
    for name, payload in others.items():
        assert arrow_insert.decode(payload) is None, name
        assert arrow_insert.decode(memoryview(payload)) is None, name


def test_read_insert_table_gives_the_same_points_either_way() -> None:
    from pingthings.server.service import arrow_io

    times, values = points(120)
    fast = arrow_io.read_insert_table(arrow_insert.encode(times, values))
    slow = arrow_io.read_insert_table(_ipc(pa.table({"time": times, "value": values})))
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_larger_payloads_are_left_to_pyarrow_without_touching_the_frame_cache() -> None:
    payload = arrow_insert.encode(*points(arrow_insert.MAX_ROWS + 1))
    kept = arrow_insert.frame.cache_info().currsize
    assert arrow_insert.decode(payload) is None
    assert arrow_insert.decode(b"\0" * (16 * 10**6 + 392)) is None
    assert arrow_insert.frame.cache_info().currsize == kept
