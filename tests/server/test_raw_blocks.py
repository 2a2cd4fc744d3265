"""RawBlocks end to end: the embedded server sends stored blocks, our client decodes them, and the
result is exactly what (Arrow)RawValues gives for the same read.

Three servers: one without a block cache (every block goes out as stored), the session's server
(blocks committed by our inserts are cached, so they go out as columns) and one restarted on the
same data with the default cache (cold: stored blocks, then, once the late admission ran, columns).
Both paths are compared point by point, values by their bits (NaN payloads and -0.0 included).
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pingthings._proto.pingthings.platform.v1 import RawBlocksParams
from pingthings.server import Server
from pingthings.timeseries import AsyncClient, Client, _raw_blocks
from pingthings.timeseries import _data_calls as dc
from pingthings.timeseries.exceptions import InvalidTimeRange, StreamNotFoundError, VersionNotAvailable
from pingthings.wire.blocks import BLOCK_FORMAT
from tests.conftest import AuthServer
from tests.server.rawclient import RawClient, stat_of

T0 = 1_700_000_000_000_000_000
PERIOD = 8_333_333  # 120 Hz


def _signal(rng: np.random.Generator, n: int, start: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points at 120 Hz with microsecond jitter, values of several kinds (grid-coded times,
    float32-exact values, 3-decimal values, arbitrary doubles, -0.0)."""
    t = start + np.arange(n, dtype=np.int64) * PERIOD + rng.integers(-2_000, 2_000, n)
    t.sort()
    kind = rng.integers(0, 3)
    if kind == 0:
        v = rng.standard_normal(n).astype(np.float32).astype(np.float64)
    elif kind == 1:
        v = np.round(np.cumsum(rng.standard_normal(n)), 3)
    else:
        v = rng.standard_normal(n) * 1e3
    v[rng.integers(0, n, 3)] = -0.0  # (clients refuse NaN and infinities)
    return t, v


def _fill(conn: Client, collection: str, seed: int) -> tuple[object, list[int], tuple[int, int]]:
    """A stream written in many versions: bulk loads, small inserts (leaf groups, leaves rewritten
    later), duplicate times, a delete, appends. Returns the stream, its versions and its time span."""
    rng = np.random.default_rng(seed)
    stream = conn.create(uuidlib.uuid4(), collection, {"name": f"s{seed}"})
    versions = []
    t, v = _signal(rng, 60_000, T0)
    stream.insert((t, v))
    versions.append(stream.get_latest_version())
    for k in range(6):  # small inserts spread over the span: they land in and split leaves
        idx = np.sort(rng.choice(t.size, 300, replace=False))
        stream.insert((t[idx] + rng.integers(1, 5), v[idx] * (k + 2)))
        versions.append(stream.get_latest_version())
    stream.insert((t[:500], v[:500]))  # the same times again: duplicates
    versions.append(stream.get_latest_version())
    stream.delete(int(t[20_000]), int(t[21_000]))
    versions.append(stream.get_latest_version())
    t2, v2 = _signal(rng, 20_000, int(t[-1]) + 10**9)
    stream.insert((t2, v2))
    versions.append(stream.get_latest_version())
    for _ in range(3):  # appends at the tail: leaves written alone (plain leaf blocks)
        t2, v2 = _signal(rng, 100, int(t2[-1]) + PERIOD)
        stream.insert((t2, v2))
        versions.append(stream.get_latest_version())
    return stream, versions, (int(t[0]), int(t2[-1]) + 1)


def _columns(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """The time and value columns, values as their bit patterns."""
    table = table.combine_chunks()
    if not table.num_rows:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    times = table.column("time").chunk(0).view(pa.int64()).to_numpy()
    return times, table.column("value").to_numpy().view(np.int64)


def _standard(conn: Client, uuid: uuidlib.UUID, start: int, end: int, version: int) -> pa.Table:
    """The read through (Arrow)RawValues, on a client that does not use RawBlocks."""
    target = conn.get_async_client()
    return conn._loop.call(dc.raw_values_table, target, uuid, start, end, version)


def _same(got: pa.Table, want: pa.Table) -> None:
    assert got.schema.equals(want.schema)
    gt, gv = _columns(got)
    wt, wv = _columns(want)
    np.testing.assert_array_equal(gt, wt)
    np.testing.assert_array_equal(gv, wv)


class Setup:
    """A server, a client using RawBlocks and one that does not, and two filled streams."""

    def __init__(self, srv: Server, collection: str) -> None:
        self.srv = srv
        self.conn = Client.connect(endpoint=srv.endpoint)
        self.plain = Client.connect(endpoint=srv.endpoint)
        _raw_blocks.disable(self.plain.get_async_client())
        self.streams = [_fill(self.conn, collection, seed) for seed in (1, 2)]

    def check(self, index: int, start: int, end: int, version: int) -> pa.Table:
        stream = self.streams[index][0]
        got = stream.raw_values(start, end, version)  # type: ignore[attr-defined]
        assert _raw_blocks.offered(self.conn.get_async_client())
        _same(got, _standard(self.plain, stream.uuid, start, end, version))  # type: ignore[attr-defined]
        return got

    def close(self) -> None:
        self.conn.close()
        self.plain.close()


@pytest.fixture(scope="module")
def uncached(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """A server without a block cache: every block of every read goes out as stored."""
    with Server(tmp_path_factory.mktemp("raw-blocks"), listen="127.0.0.1:0", cache_mb=0) as srv:
        setup = Setup(srv, "rawblocks/uncached")
        try:
            yield setup
        finally:
            setup.close()


@pytest.fixture(scope="module")
def cached(server: Server) -> Iterator[Setup]:
    """The session's server: the blocks our inserts committed are cached, so they go as columns."""
    setup = Setup(server, "rawblocks/cached")
    try:
        yield setup
    finally:
        setup.close()


def _edges(setup: Setup, index: int) -> list[int]:
    stream = setup.streams[index][0]
    times = _columns(stream.raw_values(-(1 << 60), (3 << 60) - 1))[0]  # type: ignore[attr-defined]
    return times.tolist()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
@pytest.mark.parametrize("which", ["uncached", "cached"])
def test_random_reads_match_raw_values(
    which: str, data: st.DataObject, request: pytest.FixtureRequest
) -> None:
    setup: Setup = request.getfixturevalue(which)
    index = data.draw(st.integers(0, 1))
    _, versions, (lo, hi) = setup.streams[index]
    span = hi - lo
    start = lo + data.draw(st.integers(-span // 10, span))
    end = start + data.draw(st.integers(1, span))
    version = data.draw(st.sampled_from([0, *versions]))
    setup.check(index, start, end, version)


@pytest.mark.parametrize("which", ["uncached", "cached"])
def test_nanosecond_edges_inside_blocks(which: str, request: pytest.FixtureRequest) -> None:
    setup: Setup = request.getfixturevalue(which)
    times = np.array(_edges(setup, 0), dtype=np.int64)
    for k in (0, 1, 777, 20_000, 45_123, times.size - 2):
        t = int(times[k])
        after, last = int(times[k + 1]), int(times[-1])
        for start, end in ((t, t + 1), (t - 1, t), (t, after), (t + 1, last), (t - 1, t + 1)):
            if end <= start:  # a duplicated time: no range between the two (errors are tested below)
                continue
            got = setup.check(0, start, end, 0)
            assert got.num_rows == np.count_nonzero((times >= start) & (times < end))


@pytest.mark.parametrize("which", ["uncached", "cached"])
def test_empty_reads_give_the_empty_table(which: str, request: pytest.FixtureRequest) -> None:
    setup: Setup = request.getfixturevalue(which)
    _, _, (lo, hi) = setup.streams[0]
    for start, end in ((lo - 10**9, lo), (hi, hi + 10**9), (lo + 1, lo + 2)):
        got = setup.check(0, start, end, 0)
        assert got.num_rows == 0 and got.schema.equals(_raw_blocks_schema())
    fresh = setup.conn.create(uuidlib.uuid4(), "rawblocks/empty", {"name": "empty"})
    assert fresh.raw_values(lo, hi).num_rows == 0


def _raw_blocks_schema() -> pa.Schema:
    from pingthings.timeseries.constants import RAW_VALUES_SCHEMA

    return RAW_VALUES_SCHEMA


def test_errors_are_those_of_raw_values(uncached: Setup) -> None:
    stream, versions, (lo, hi) = uncached.streams[0]
    with pytest.raises(VersionNotAvailable) as got:
        stream.raw_values(lo, hi, max(versions) + 10)  # type: ignore[attr-defined]
    with pytest.raises(VersionNotAvailable) as want:
        _standard(uncached.plain, stream.uuid, lo, hi, max(versions) + 10)  # type: ignore[attr-defined]
    assert str(got.value) == str(want.value)
    for start, end in ((lo, lo), (hi, lo)):
        with pytest.raises(InvalidTimeRange) as got_range:
            stream.raw_values(start, end)  # type: ignore[attr-defined]
        with pytest.raises(InvalidTimeRange) as want_range:
            _standard(uncached.plain, stream.uuid, start, end, 0)  # type: ignore[attr-defined]
        assert str(got_range.value) == str(want_range.value)
    missing = uncached.conn.stream_from_uuid(uuidlib.uuid4())
    with pytest.raises(StreamNotFoundError):
        missing.raw_values(lo, hi)


def test_buffered_points_are_read(tmp_path: Path) -> None:
    """Small inserts wait in the server's ingest buffer; a read merges them first, as every read."""
    server = Server(tmp_path, listen="127.0.0.1:0", cache_mb=0)
    with server as srv, Client.connect(endpoint=srv.endpoint) as conn:
        stream = conn.create(uuidlib.uuid4(), "rawblocks/buffered", {"name": "b"})
        rng = np.random.default_rng(5)
        t, v = _signal(rng, 5_000, T0)
        stream.insert((t, v))
        for k in range(20):
            stream.insert((t[k * 50 : k * 50 + 10] + 1, v[k * 50 : k * 50 + 10]))
        assert srv.runtime.engine.buffered_points() > 0
        got = _columns(stream.raw_values(T0 - 10**9, int(t[-1]) + 1))
        assert srv.runtime.engine.buffered_points() == 0
        added = [t[k * 50 : k * 50 + 10] + 1 for k in range(20)]
        want_t = np.sort(np.concatenate([t, *added]), kind="stable")
        np.testing.assert_array_equal(got[0], want_t)


def test_a_restarted_server_sends_blocks_then_columns(tmp_path: Path) -> None:
    """Cold: stored blocks; after the background admission the same read comes as columns."""
    with Server(tmp_path, listen="127.0.0.1:0") as srv:
        setup = Setup(srv, "rawblocks/restart")
        ranges = [(setup.streams[0][2][0], setup.streams[0][2][1], 0)]
        setup.close()
    with Server(tmp_path, listen="127.0.0.1:0") as srv:
        setup = Setup.__new__(Setup)
        setup.conn = Client.connect(endpoint=srv.endpoint)
        setup.plain = Client.connect(endpoint=srv.endpoint)
        _raw_blocks.disable(setup.plain.get_async_client())
        uuid = _stream_uuids(setup.conn, "rawblocks/restart")[0]
        try:
            with RawClient(srv.endpoint) as raw:
                for _, (start, end, version) in enumerate(ranges):
                    cold = _raw_call(raw, uuid, start, end, [BLOCK_FORMAT])
                    assert _has_stored_blocks(cold)
                    assert srv.runtime.engine.admission_idle(30)
                    warm = _raw_call(raw, uuid, start, end, [BLOCK_FORMAT])
                    assert not _has_stored_blocks(warm)
                    got = setup.conn.stream_from_uuid(uuid).raw_values(start, end, version)
                    _same(got, _standard(setup.plain, uuid, start, end, version))
        finally:
            setup.close()


def test_a_client_without_the_format_gets_columns(uncached: Setup) -> None:
    stream, _, (lo, hi) = uncached.streams[1]
    uuid = stream.uuid  # type: ignore[attr-defined]
    with RawClient(uncached.srv.endpoint) as raw:
        assert _has_stored_blocks(_raw_call(raw, uuid, lo, hi, [BLOCK_FORMAT]))
        for formats in ([], [BLOCK_FORMAT + 1], [1, 2, 3, 4]):  # [1..4]: a client from before pco
            replies = _raw_call(raw, uuid, lo, hi, formats)
            assert not _has_stored_blocks(replies)
            reader = _raw_blocks._Reader(str(uuid), lo, hi)
            times = np.concatenate([seg[0] for r in replies for seg in reader.message(r)])
            np.testing.assert_array_equal(times, _columns(_standard(uncached.plain, uuid, lo, hi, 0))[0])


def test_replies_are_bounded(uncached: Setup) -> None:
    # Random doubles stay ~7 bytes a point stored: 200,000 of them need several messages either way.
    rng = np.random.default_rng(9)
    stream = uncached.conn.create(uuidlib.uuid4(), "rawblocks/bounded", {"name": "random"})
    stream.insert((T0 + np.arange(200_000, dtype=np.int64) * PERIOD, rng.random(200_000)))
    with RawClient(uncached.srv.endpoint) as raw:
        for formats in ([BLOCK_FORMAT], []):
            replies = _raw_call(raw, stream.uuid, -(1 << 60), (3 << 60) - 1, formats)  # type: ignore[attr-defined]
            assert len(replies) > 1 and max(len(r) for r in replies) <= 16 * 50_000 + 1024
            assert _has_stored_blocks(replies) == bool(formats)


def test_hidden_stream_is_missing_to_a_non_admin_key(auth_server: AuthServer) -> None:
    with Client.connect(endpoint=auth_server.endpoint, apikey=auth_server.admin_key) as admin:
        hidden = admin.create(uuidlib.uuid4(), "rawblocks/hidden", {"name": "h", "hidden": "true"})
        hidden.insert((np.array([T0, T0 + 1]), np.array([1.0, 2.0])))
        assert hidden.raw_values(T0, T0 + 2).num_rows == 2
    user = Client.connect(endpoint=auth_server.endpoint, apikey=auth_server.api_key)
    with user, pytest.raises(StreamNotFoundError):
        user.stream_from_uuid(hidden.uuid).raw_values(T0, T0 + 2)


@pytest.mark.anyio
async def test_async_reads_match_on_both_backends(uncached: Setup) -> None:
    stream, versions, (lo, hi) = uncached.streams[0]
    uuid = stream.uuid  # type: ignore[attr-defined]
    endpoint = uncached.srv.endpoint
    async with await AsyncClient.connect(endpoint=endpoint) as client, await AsyncClient.connect(
        endpoint=endpoint
    ) as plain:
        _raw_blocks.disable(plain)
        mine = await client.stream_from_uuid(uuid)
        got = await mine.raw_values(lo + 12_345, hi - 999, versions[3])
        chunks = [t async for t in mine.raw_values_iter(lo, hi)]
        assert _raw_blocks.offered(client)
        theirs = await plain.stream_from_uuid(uuid)
        _same(got, await theirs.raw_values(lo + 12_345, hi - 999, versions[3]))
        _same(pa.concat_tables(chunks), await theirs.raw_values(lo, hi))


# ------------------------------------------------------------------------------------------ helpers
def _raw_call(raw: RawClient, uuid: uuidlib.UUID, start: int, end: int, formats: list[int]) -> list[bytes]:
    request = RawBlocksParams(uuid=uuid.bytes, start=start, end=end, block_formats=formats)
    call = raw.channel.unary_stream("/pingthings.platform.v1.Platform/RawBlocks")
    replies = list(call(bytes(request), metadata=raw.metadata, timeout=60))
    assert all(stat_of(r) is None for r in replies)
    return replies


def _has_stored_blocks(replies: list[bytes]) -> bool:
    from pingthings._proto.pingthings.platform.v1 import RawBlocksResponse

    return any(p.block for r in replies for p in RawBlocksResponse.parse(r).pieces)


def _stream_uuids(conn: Client, collection: str) -> list[uuidlib.UUID]:
    return [s.uuid for s in conn.streams_in_collection(collection)]


def test_the_reads_cover_partly_wanted_groups_and_columns(uncached: Setup, cached: Setup) -> None:
    """The data above exercise what they should: groups of which a read wants only some slots
    (leaves rewritten after the group was written), plain leaves, and columns from a warm cache."""
    from pingthings._proto.pingthings.platform.v1 import RawBlocksResponse
    from pingthings.wire.blocks.checked import checked_view

    stream, _, (lo, hi) = uncached.streams[0]
    with RawClient(uncached.srv.endpoint) as raw:
        replies = _raw_call(raw, stream.uuid, lo, hi, [BLOCK_FORMAT])  # type: ignore[attr-defined]
    pieces = [p for r in replies for p in RawBlocksResponse.parse(r).pieces]
    views = [(checked_view(p.block), p.count) for p in pieces if p.block]
    assert any(v.bounds is not None and v.size > count for v, count in views)
    assert any(v.bounds is None for v, _ in views)
    stream, _, (lo, hi) = cached.streams[0]
    with RawClient(cached.srv.endpoint) as raw:
        assert not _has_stored_blocks(_raw_call(raw, stream.uuid, lo, hi, [BLOCK_FORMAT]))  # type: ignore[attr-defined]


@pytest.mark.anyio
@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
async def test_server_decoded_share_matches_on_both_backends(
    uncached: Setup, share: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cold reads whose batches the server decodes in part (columns) and sends in part (stored
    blocks, decoded here): the same points as RawValues."""
    from pingthings.server.engine import stored_reads

    monkeypatch.setattr(stored_reads, "SERVER_SHARE", share)
    stream, versions, (lo, hi) = uncached.streams[1]
    uuid = stream.uuid  # type: ignore[attr-defined]
    if share in (0.0, 1.0):
        with RawClient(uncached.srv.endpoint) as raw:
            assert _has_stored_blocks(_raw_call(raw, uuid, lo, hi, [BLOCK_FORMAT])) == (share == 0.0)
    endpoint = uncached.srv.endpoint
    async with await AsyncClient.connect(endpoint=endpoint) as client, await AsyncClient.connect(
        endpoint=endpoint
    ) as plain:
        _raw_blocks.disable(plain)
        mine, theirs = await client.stream_from_uuid(uuid), await plain.stream_from_uuid(uuid)
        for start, end, version in ((lo, hi, 0), (lo + 7_777, hi - 4_321, versions[2])):
            _same(await mine.raw_values(start, end, version), await theirs.raw_values(start, end, version))
