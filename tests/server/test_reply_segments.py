"""Segmented Arrow replies: the parts, joined, are exactly the bytes of the single-buffer reply."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pingthings._proto import v5api
from pingthings.server.service.arrow_reply import (
    MULTI_ARROW_BYTES_FIELD,
    SEGMENTS_MIN_ROWS,
    Segments,
    arrow_reply,
    arrow_reply_segments,
    raw_pieces_reply,
)
from pingthings.wire import arrow as wire_arrow


def _raw(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return wire_arrow.raw_table(np.sort(rng.integers(0, 10**18, rows)), rng.normal(size=rows))


@pytest.mark.parametrize("version", [0, 7, 2**40])
@pytest.mark.parametrize("rows", [SEGMENTS_MIN_ROWS, SEGMENTS_MIN_ROWS + 1, 50_000, 123_457])
def test_segments_join_to_the_single_buffer_reply(version: int, rows: int) -> None:
    table = _raw(rows, rows)
    reply = arrow_reply_segments(version, table)
    assert isinstance(reply, Segments)
    assert len(reply) == sum(reply.sizes) == len(reply.join())
    assert reply.join() == arrow_reply(version, table).to_pybytes()
    parsed = v5api.ArrowRawValuesResponse.parse(reply.join())
    assert parsed.version_major == version
    assert wire_arrow.ipc_to_table(parsed.arrow_bytes).equals(table)


@pytest.mark.parametrize("rows", [SEGMENTS_MIN_ROWS, 5001, 77_777])
def test_a_float32_template_pads_its_odd_length_column(rows: int) -> None:
    table = _raw(rows)
    cast = pa.table(
        {"t": table.column("time").cast(pa.int64()), "v": table.column("value").cast(pa.float32())}
    )
    reply = arrow_reply_segments(3, cast)
    assert isinstance(reply, Segments)
    assert reply.join() == arrow_reply(3, cast).to_pybytes()


def test_small_tables_and_tables_with_nulls_come_as_one_buffer() -> None:
    small = _raw(SEGMENTS_MIN_ROWS - 1)
    assert isinstance(arrow_reply_segments(1, small), pa.Buffer)
    rows = SEGMENTS_MIN_ROWS * 2
    values = pa.array([None if i % 7 == 0 else float(i) for i in range(rows)], pa.float64())
    with_nulls = pa.table({"time": _raw(rows).column("time"), "value": values})
    reply = arrow_reply_segments(1, with_nulls)
    assert isinstance(reply, pa.Buffer)
    assert reply.to_pybytes() == arrow_reply(1, with_nulls).to_pybytes()


@given(
    sizes=st.lists(st.integers(0, 3000), min_size=1, max_size=40),
    version=st.sampled_from([0, 1, 99_999]),
)
def test_raw_pieces_reply_equals_the_reply_of_the_joined_points(sizes: list[int], version: int) -> None:
    rows = sum(sizes)
    rng = np.random.default_rng(rows)
    times = np.sort(rng.integers(0, 10**18, rows)).astype(np.int64)
    values = rng.normal(size=rows)
    edges = np.cumsum([0, *sizes])
    ts = [times[a:b] for a, b in itertools.pairwise(edges)]
    vs = [values[a:b] for a, b in itertools.pairwise(edges)]
    for piece in ts + vs:
        piece.setflags(write=False)  # as the cache hands them out
    reply = raw_pieces_reply(version, ts, vs, rows)
    expected = arrow_reply(version, wire_arrow.raw_table(times, values)).to_pybytes()
    got = reply.join() if isinstance(reply, Segments) else reply.to_pybytes()
    assert got == expected
    assert isinstance(reply, Segments) == (rows >= SEGMENTS_MIN_ROWS)


def test_multi_values_replies_use_their_own_field_number() -> None:
    rows = SEGMENTS_MIN_ROWS * 3
    rng = np.random.default_rng(4)
    table = pa.table(
        {
            "time": wire_arrow.time_array(np.arange(rows, dtype=np.int64)),
            "a": rng.normal(size=rows),
            "b": rng.normal(size=rows),
        }
    )
    reply = arrow_reply_segments(0, table, MULTI_ARROW_BYTES_FIELD)
    assert isinstance(reply, Segments)
    assert reply.join() == arrow_reply(0, table, MULTI_ARROW_BYTES_FIELD).to_pybytes()
    parsed = v5api.ArrowMultiValuesResponse.parse(reply.join())
    assert wire_arrow.ipc_to_table(parsed.arrow_bytes).equals(table)
