"""Arrow RPCs and GenerateCSV of the embedded server, compared with the classic RPCs and numpy."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest

from pingthings._proto import v5api
from pingthings.server import Server
from pingthings.wire import points
from pingthings.wire.limits import MIN_TIME, TIME_LIMIT
from pingthings.wire.status import StatusCode
from tests.server.helpers import create, insert, random_points
from tests.server.rawclient import RawClient, stat_code

RAW_SCHEMA = pa.schema(
    [
        pa.field("time", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
    ]
)


@pytest.fixture
def client(server: Server) -> Iterator[RawClient]:
    with RawClient(server.endpoint) as c:
        yield c


def tables(payloads: list[bytes], cls: type) -> list[pa.Table]:
    out = []
    for payload in payloads:
        message = cls.parse(payload)
        assert message.stat is None, message.stat
        out.append(pa.ipc.open_stream(message.arrow_bytes).read_all())
    return out


def schema_bytes(schema: pa.Schema) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema):
        pass
    return sink.getvalue().to_pybytes()


def test_arrow_raw_values_matches_raw_values(client: RawClient, unique_collection: str) -> None:
    rng = np.random.default_rng(7)
    uu = create(client, unique_collection)
    times, values = random_points(rng, 20_000)
    insert(client, uu, times, values)
    got = pa.concat_tables(
        tables(
            client.stream(
                "ArrowRawValues", v5api.ArrowRawValuesParams(uuid=uu, start=MIN_TIME, end=TIME_LIMIT - 1)
            ),
            v5api.ArrowRawValuesResponse,
        )
    )
    assert got.schema.equals(RAW_SCHEMA)
    order = np.argsort(times)
    np.testing.assert_array_equal(got.column("time").cast(pa.int64()).to_numpy(), times[order])
    np.testing.assert_array_equal(got.column("value").to_numpy(), values[order])

    template = pa.schema([("t", pa.int64()), ("v", pa.float32())])
    cast = pa.concat_tables(
        tables(
            client.stream(
                "ArrowRawValues",
                v5api.ArrowRawValuesParams(
                    uuid=uu, start=MIN_TIME, end=TIME_LIMIT - 1, template_bytes=schema_bytes(template)
                ),
            ),
            v5api.ArrowRawValuesResponse,
        )
    )
    assert cast.schema.equals(template)
    np.testing.assert_array_equal(cast.column("t").to_numpy(), times[order])
    np.testing.assert_array_equal(cast.column("v").to_numpy(), values[order].astype(np.float32))


def test_arrow_empty_result_is_one_message_with_schema(client: RawClient, unique_collection: str) -> None:
    uu = create(client, unique_collection)
    got = tables(
        client.stream("ArrowRawValues", v5api.ArrowRawValuesParams(uuid=uu, start=0, end=10)),
        v5api.ArrowRawValuesResponse,
    )
    assert len(got) == 1 and got[0].num_rows == 0 and got[0].schema.equals(RAW_SCHEMA)
    stat = tables(
        client.stream(
            "ArrowAlignedWindows", v5api.AlignedWindowsParams(uuid=uu, start=0, end=1 << 20, point_width=8)
        ),
        v5api.ArrowAlignedWindowsResponse,
    )
    assert len(stat) == 1 and stat[0].num_rows == 0
    assert stat[0].schema.names == ["time", "min", "mean", "max", "count", "stddev"]


def test_arrow_windows_equal_classic(client: RawClient, unique_collection: str) -> None:
    rng = np.random.default_rng(8)
    uu = create(client, unique_collection)
    times, values = random_points(rng, 3000, start=0, spread=1 << 32)
    insert(client, uu, times, values)
    aligned = v5api.AlignedWindowsParams(uuid=uu, start=0, end=1 << 32, point_width=24)
    windows = v5api.WindowsParams(uuid=uu, start=5, end=5 + 1_000_003 * 300, width=1_000_003)
    for classic, arrow, params, cls in [
        ("AlignedWindows", "ArrowAlignedWindows", aligned, v5api.ArrowAlignedWindowsResponse),
        ("Windows", "ArrowWindows", windows, v5api.ArrowWindowsResponse),
    ]:
        want = [points.decode_windows(p) for p in client.stream(classic, params)]
        got = pa.concat_tables(tables(client.stream(arrow, params), cls))
        np.testing.assert_array_equal(
            got.column("time").cast(pa.int64()).to_numpy(), np.concatenate([w.time for w in want])
        )
        for key in ("min", "mean", "max", "count", "stddev"):
            np.testing.assert_array_equal(
                got.column(key).to_numpy(), np.concatenate([getattr(w, key) for w in want])
            )


def test_arrow_multi_values_snaps_and_joins(client: RawClient, unique_collection: str) -> None:
    second = 1_000_000_000
    a = create(client, unique_collection)
    b = create(client, unique_collection)
    a_times = np.array([0, 400_000_000, 1_500_000_000, 2_200_000_000, 2_750_000_000])
    b_times = np.array([-500_000_000, 999_999_999, 4_000_000_000])
    insert(client, a, a_times, np.arange(len(a_times), dtype=float))
    insert(client, b, b_times, 10 + np.arange(len(b_times), dtype=float))
    start, end = 0, 3 * second
    got = pa.concat_tables(
        tables(
            client.stream(
                "ArrowMultiValues",
                v5api.ArrowMultiValuesParams(
                    uuid=[a, b], version_major=[0, 0], start=start, end=end, snap_period_ns=second
                ),
            ),
            v5api.ArrowMultiValuesResponse,
        )
    )
    assert got.column_names == ["time", str(uuidlib.UUID(bytes=a)), str(uuidlib.UUID(bytes=b))]

    def snapped(times: np.ndarray, values: np.ndarray) -> dict[int, float]:
        out: dict[int, float] = {}
        for t, v in zip(times.tolist(), values.tolist(), strict=True):
            slot = (t // second) * second + (second if t % second * 2 >= second else 0)
            if start <= slot < end:
                out[slot] = v
        return out

    sa = snapped(a_times, np.arange(len(a_times), dtype=float))
    sb = snapped(b_times, 10 + np.arange(len(b_times), dtype=float))
    slots = sorted(set(sa) | set(sb))
    np.testing.assert_array_equal(got.column("time").cast(pa.int64()).to_numpy(), slots)
    for uu, expect in ((a, sa), (b, sb)):
        column = got.column(str(uuidlib.UUID(bytes=uu))).to_numpy()
        np.testing.assert_array_equal(column, [expect.get(s, np.nan) for s in slots])

    unsnapped = pa.concat_tables(
        tables(
            client.stream(
                "ArrowMultiValues", v5api.ArrowMultiValuesParams(uuid=[a, b], start=start, end=end)
            ),
            v5api.ArrowMultiValuesResponse,
        )
    )
    want_times = np.union1d(
        a_times[(a_times >= start) & (a_times < end)], b_times[(b_times >= start) & (b_times < end)]
    )
    np.testing.assert_array_equal(unsnapped.column("time").cast(pa.int64()).to_numpy(), want_times)


def test_arrow_insert_round_trips(client: RawClient, unique_collection: str) -> None:
    uu = create(client, unique_collection)
    times = np.array([30, 10, 20], dtype=np.int64)
    table = pa.table({"time": pa.array(times).cast(pa.timestamp("ns", tz="UTC")), "value": [3.0, 1.0, 2.0]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    reply = v5api.InsertResponse.parse(
        client.unary(
            "ArrowInsert", v5api.ArrowInsertParams(uuid=uu, arrow_bytes=sink.getvalue().to_pybytes())
        )
    )
    assert reply.stat is None and reply.version_major > 10
    got = points.decode_raw_values(
        client.stream("RawValues", v5api.RawValuesParams(uuid=uu, start=0, end=100))[0]
    )
    np.testing.assert_array_equal(got.times, [10, 20, 30])
    np.testing.assert_array_equal(got.values, [1.0, 2.0, 3.0])
    garbage = client.unary("ArrowInsert", v5api.ArrowInsertParams(uuid=uu, arrow_bytes=b"not arrow"))
    assert stat_code(garbage) == StatusCode.WRONG_ARGS


def test_generate_csv_merges_streams(client: RawClient, unique_collection: str) -> None:
    a = create(client, unique_collection)
    b = create(client, unique_collection)
    insert(client, a, np.array([1_000_000_000, 2_000_000_000]), np.array([1.5, 2.5]))
    insert(client, b, np.array([2_000_000_000, 3_000_000_000]), np.array([20.0, 30.0]))
    replies = [
        v5api.GenerateCsvResponse.parse(p)
        for p in client.stream(
            "GenerateCSV",
            v5api.GenerateCsvParams(
                query_type=v5api.GenerateCsvParamsQueryType.RAW_QUERY,
                start_time=0,
                end_time=10**10,
                streams=[v5api.StreamCsvConfig(label="A", uuid=a), v5api.StreamCsvConfig(label="B", uuid=b)],
            ),
        )
    ]
    assert replies[0].is_header and replies[0].row[2:] == ["A", "B"]
    rows = [r.row for r in replies[1:]]
    assert [row[0] for row in rows] == ["1000000000", "2000000000", "3000000000"]
    assert rows[0][1] == "1970-01-01T00:00:01Z"
    assert [row[2:] for row in rows] == [[f"{1.5:f}", ""], [f"{2.5:f}", f"{20.0:f}"], ["", f"{30.0:f}"]]


def test_generate_csv_aligned_windows_uses_depth_as_point_width(
    client: RawClient, unique_collection: str
) -> None:
    rng = np.random.default_rng(9)
    uu = create(client, unique_collection)
    times, values = random_points(rng, 500, start=0, spread=1 << 24)
    insert(client, uu, times, values)
    params = v5api.AlignedWindowsParams(uuid=uu, start=0, end=1 << 24, point_width=20)
    want = [points.decode_windows(p) for p in client.stream("AlignedWindows", params)]
    replies = [
        v5api.GenerateCsvResponse.parse(p)
        for p in client.stream(
            "GenerateCSV",
            v5api.GenerateCsvParams(
                query_type=v5api.GenerateCsvParamsQueryType.ALIGNED_WINDOWS_QUERY,
                start_time=0,
                end_time=1 << 24,
                depth=20,
                include_versions=True,
                streams=[v5api.StreamCsvConfig(label="S", uuid=uu)],
            ),
        )
    ]
    version = want[0].version_major
    assert replies[0].row[2:] == [f"S, ver. {version} ({part})" for part in ("Min", "Mean", "Max", "Count")]
    rows = [r.row for r in replies[1:]]
    assert [int(r[0]) for r in rows] == np.concatenate([w.time for w in want]).tolist()
    assert [r[5] for r in rows] == [str(c) for c in np.concatenate([w.count for w in want]).tolist()]
    assert [r[3] for r in rows] == [f"{m:f}" for m in np.concatenate([w.mean for w in want]).tolist()]
    bad = client.stream(
        "GenerateCSV",
        v5api.GenerateCsvParams(
            query_type=v5api.GenerateCsvParamsQueryType.ALIGNED_WINDOWS_QUERY,
            depth=64,
            start_time=0,
            end_time=10,
            streams=[v5api.StreamCsvConfig(label="S", uuid=uu)],
        ),
    )
    assert len(bad) == 1 and stat_code(bad[0]) == StatusCode.INVALID_POINT_WIDTH


def _stored(client: RawClient, uu: bytes) -> tuple[np.ndarray, np.ndarray]:
    got = pa.concat_tables(
        tables(
            client.stream(
                "ArrowRawValues", v5api.ArrowRawValuesParams(uuid=uu, start=MIN_TIME, end=TIME_LIMIT - 1)
            ),
            v5api.ArrowRawValuesResponse,
        )
    )
    return got.column("time").cast(pa.int64()).to_numpy(), got.column("value").to_numpy()


@pytest.mark.parametrize("shape", ["plain", "unknown field", "uuid twice", "rounding"])
def test_arrow_insert_requests_of_every_shape_insert_the_same(
    client: RawClient, unique_collection: str, shape: str
) -> None:
    # The plain shape is read by hand (wire/insert_messages.py), the others by the message class.
    times = np.arange(120, dtype=np.int64) * 8_333_333 + 1_700_000_000 * 10**9 + 5
    values = np.round(np.sin(np.arange(120)), 3)
    table = pa.table({"time": pa.array(times, pa.timestamp("ns", tz="UTC")), "value": values})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    uu = create(client, unique_collection)
    message = v5api.ArrowInsertParams(uuid=uu, arrow_bytes=sink.getvalue().to_pybytes())
    if shape == "rounding":
        message.rounding = v5api.RoundSpec(bits=4)
    request = bytes(message)
    if shape == "unknown field":
        request += b"\x30\x01"
    elif shape == "uuid twice":
        request = b"\x0a\x10" + uuidlib.uuid4().bytes + request  # protobuf keeps the last one
    reply = client.unary("ArrowInsert", request)
    parsed = v5api.InsertResponse.parse(reply)
    assert parsed.stat is None, parsed.stat
    assert parsed.version_major > 0
    stored_t, stored_v = _stored(client, uu)
    expected_t = (times + 8) & ~15 if shape == "rounding" else times
    np.testing.assert_array_equal(stored_t, expected_t)
    np.testing.assert_array_equal(stored_v, values)
