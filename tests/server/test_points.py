"""Point RPCs of the embedded server, checked against results computed here with numpy."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator

import numpy as np
import pytest

from pingthings._proto import v5api
from pingthings.server import Server
from pingthings.wire import points
from pingthings.wire.limits import MIN_TIME, TIME_LIMIT
from pingthings.wire.status import StatusCode
from tests.server.helpers import create, flush, insert, random_points
from tests.server.rawclient import RawClient, stat_code


@pytest.fixture
def client(server: Server) -> Iterator[RawClient]:
    with RawClient(server.endpoint) as c:
        yield c


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def raw(client: RawClient, uu: bytes, start: int, end: int, version: int = 0) -> list[points.RawValuesResult]:
    return [
        points.decode_raw_values(p)
        for p in client.stream(
            "RawValues", v5api.RawValuesParams(uuid=uu, start=start, end=end, version_major=version)
        )
    ]


def windows_of(client: RawClient, method: str, params: v5api.Message) -> list[points.WindowsResult]:
    return [points.decode_windows(p) for p in client.stream(method, params)]


def expected_windows(
    times: np.ndarray, values: np.ndarray, starts: np.ndarray, width: int
) -> dict[str, np.ndarray]:
    out: dict[str, list[float]] = {k: [] for k in ("count", "min", "mean", "max", "stddev")}
    for s in starts:
        sel = values[(times >= s) & (times < s + width)]
        out["count"].append(len(sel))
        for k, f in (("min", np.min), ("mean", np.mean), ("max", np.max), ("stddev", np.std)):
            out[k].append(float(f(sel)) if len(sel) else 0.0)
    return {k: np.asarray(v) for k, v in out.items()}


def test_insert_then_raw_values_sorted_and_chunked(
    client: RawClient, unique_collection: str, rng: np.random.Generator
) -> None:
    uu = create(client, unique_collection)
    times, values = random_points(rng, 12_345)
    version = insert(client, uu, times, values)
    order = np.argsort(times)
    messages = raw(client, uu, MIN_TIME, TIME_LIMIT - 1)
    assert all(m.stat is None and m.version_major == version for m in messages)
    assert max(len(m.times) for m in messages) <= 5000 and len(messages) >= 3
    np.testing.assert_array_equal(np.concatenate([m.times for m in messages]), times[order])
    np.testing.assert_array_equal(np.concatenate([m.values for m in messages]), values[order])
    lo, hi = np.sort(times)[[100, 9000]]
    sub = np.concatenate([m.times for m in raw(client, uu, int(lo), int(hi))])
    np.testing.assert_array_equal(sub, np.sort(times[(times >= lo) & (times < hi)]))


def test_empty_results_send_one_message_with_version(client: RawClient, unique_collection: str) -> None:
    uu = create(client, unique_collection)
    messages = raw(client, uu, 0, 100)
    assert len(messages) == 1 and len(messages[0].times) == 0 and messages[0].version_major == 10
    aligned = windows_of(
        client, "AlignedWindows", v5api.AlignedWindowsParams(uuid=uu, start=0, end=1 << 20, point_width=10)
    )
    assert len(aligned) == 1 and len(aligned[0].time) == 0 and aligned[0].version_major == 10


def test_versions_are_snapshots(client: RawClient, unique_collection: str) -> None:
    uu = create(client, unique_collection)
    v1 = insert(client, uu, np.array([10, 20]), np.array([1.0, 2.0]))
    flush(client, uu)  # buffered inserts share their pending version until it is merged
    v2 = insert(client, uu, np.array([30]), np.array([3.0]))
    assert v2 > v1
    np.testing.assert_array_equal(raw(client, uu, 0, 100, version=v1)[0].times, [10, 20])
    np.testing.assert_array_equal(raw(client, uu, 0, 100)[0].times, [10, 20, 30])
    delete = v5api.DeleteResponse.parse(client.unary("Delete", v5api.DeleteParams(uuid=uu, start=15, end=25)))
    assert delete.stat is None and delete.version_major > v2
    np.testing.assert_array_equal(raw(client, uu, 0, 100)[0].times, [10, 30])
    np.testing.assert_array_equal(raw(client, uu, 0, 100, version=v2)[0].times, [10, 20, 30])


def test_aligned_windows_and_windows_match_numpy(
    client: RawClient, unique_collection: str, rng: np.random.Generator
) -> None:
    uu = create(client, unique_collection)
    times, values = random_points(rng, 5000, start=0, spread=1 << 30)
    insert(client, uu, times, values)
    pw = 22
    got = windows_of(
        client, "AlignedWindows", v5api.AlignedWindowsParams(uuid=uu, start=0, end=1 << 30, point_width=pw)
    )
    g_time = np.concatenate([w.time for w in got])
    starts = np.arange(0, 1 << 30, 1 << pw)
    want = expected_windows(times, values, starts, 1 << pw)
    nonempty = want["count"] > 0
    np.testing.assert_array_equal(g_time, starts[nonempty])
    for key in ("min", "mean", "max", "stddev"):
        np.testing.assert_allclose(
            np.concatenate([getattr(w, key) for w in got]), want[key][nonempty], rtol=1e-9, atol=1e-12
        )
    np.testing.assert_array_equal(np.concatenate([w.count for w in got]), want["count"][nonempty])

    width, start, end = 12_345_678, 1_000, 1_000 + 12_345_678 * 40 + 77
    got = windows_of(client, "Windows", v5api.WindowsParams(uuid=uu, start=start, end=end, width=width))
    starts = start + width * np.arange(40)
    want = expected_windows(times, values, starts, width)
    np.testing.assert_array_equal(np.concatenate([w.time for w in got]), starts)
    np.testing.assert_array_equal(np.concatenate([w.count for w in got]), want["count"])
    np.testing.assert_allclose(np.concatenate([w.mean for w in got]), want["mean"], rtol=1e-9, atol=1e-12)


def test_nearest_directions(client: RawClient, unique_collection: str) -> None:
    uu = create(client, unique_collection)
    insert(client, uu, np.array([80, 100, 120]), np.array([8.0, 10.0, 12.0]))

    def nearest(t: int, backward: bool) -> points.NearestResult:
        return points.decode_nearest(
            client.unary("Nearest", v5api.NearestParams(uuid=uu, time=t, backward=backward))
        )

    assert (nearest(100, False).time, nearest(100, False).value) == (100, 10.0)
    assert nearest(100, True).time == 80
    assert nearest(TIME_LIMIT - 1, True).time == 120
    assert nearest(121, False).stat.code == StatusCode.NO_SUCH_POINT


def test_changes_cover_what_changed(client: RawClient, unique_collection: str) -> None:
    uu = create(client, unique_collection)
    v1 = insert(client, uu, np.array([1_000, 2_000]), np.array([1.0, 2.0]))
    flush(client, uu)  # buffered inserts share their pending version until it is merged
    v2 = insert(client, uu, np.array([5_000_000_000]), np.array([3.0]))
    replies = [
        points.decode_changes(p)
        for p in client.stream(
            "Changes", v5api.ChangesParams(uuid=uu, from_major=v1, to_major=v2, resolution=10)
        )
    ]
    starts = np.concatenate([r.starts for r in replies])
    ends = np.concatenate([r.ends for r in replies])
    assert all(r.stat is None for r in replies)
    assert np.any((starts <= 5_000_000_000) & (ends > 5_000_000_000))
    bad = client.stream("Changes", v5api.ChangesParams(uuid=uu, from_major=v2, to_major=v1))
    assert stat_code(bad[-1]) == StatusCode.INVALID_VERSIONS


@pytest.mark.parametrize(
    ("times", "values", "code"),
    [
        ([1, 2], [1.0, float("nan")], StatusCode.BAD_VALUE),
        ([1, 2], [1.0, float("inf")], StatusCode.BAD_VALUE),
        ([MIN_TIME - 1], [1.0], StatusCode.INVALID_TIME_RANGE),
        ([TIME_LIMIT - 1], [1.0], StatusCode.INVALID_TIME_RANGE),
    ],
)
def test_insert_rejects_bad_points(
    client: RawClient, unique_collection: str, times: list[int], values: list[float], code: int
) -> None:
    uu = create(client, unique_collection)
    reply = client.unary("Insert", points.encode_insert(uu, np.array(times), np.array(values)))
    assert stat_code(reply) == code
    assert len(raw(client, uu, MIN_TIME, TIME_LIMIT - 1)[0].times) == 0  # nothing was stored


def test_query_errors(client: RawClient, unique_collection: str) -> None:
    uu = create(client, unique_collection)
    unknown = uuidlib.uuid4().bytes
    cases = [
        ("RawValues", v5api.RawValuesParams(uuid=unknown, start=0, end=10), StatusCode.NO_SUCH_STREAM),
        ("RawValues", v5api.RawValuesParams(uuid=uu, start=10, end=10), StatusCode.INVALID_TIME_RANGE),
        ("RawValues", v5api.RawValuesParams(uuid=uu, start=0, end=TIME_LIMIT), StatusCode.INVALID_TIME_RANGE),
        ("RawValues", v5api.RawValuesParams(uuid=uu[:8], start=0, end=10), StatusCode.WRONG_ARGS),
        (
            "RawValues",
            v5api.RawValuesParams(uuid=uu, start=0, end=10, version_major=999),
            StatusCode.VERSION_NOT_AVAILABLE,
        ),
        (
            "AlignedWindows",
            v5api.AlignedWindowsParams(uuid=uu, start=0, end=1 << 40, point_width=64),
            StatusCode.INVALID_POINT_WIDTH,
        ),
        ("Windows", v5api.WindowsParams(uuid=uu, start=0, end=100, width=0), StatusCode.INVALID_POINT_WIDTH),
        (
            "ArrowWindows",
            v5api.WindowsParams(uuid=uu, start=0, end=100, width=0),
            StatusCode.INVALID_POINT_WIDTH,
        ),
    ]
    for method, params, code in cases:
        replies = client.stream(method, params)
        assert len(replies) == 1 and stat_code(replies[0]) == code, (method, params)
    assert client.info().major_version == 5


def test_insert_too_big_is_refused(tmp_path) -> None:
    with Server(tmp_path, max_insert_points=1000) as small, RawClient(small.endpoint) as c:
        uu = create(c, "big")
        ok = c.unary("Insert", points.encode_insert(uu, np.arange(1000), np.ones(1000)))
        assert stat_code(ok) == 0
        too_big = c.unary("Insert", points.encode_insert(uu, np.arange(2000, 3001), np.ones(1001)))
        assert stat_code(too_big) == StatusCode.INSERT_TOO_BIG
        assert c.info().major_version == 5


def test_default_insert_limit_is_well_above_client_batches(server: Server) -> None:
    assert server.config.max_insert_points >= 20 * 50_000
