"""Platform MultiAlignedWindows on the wire: bounded replies, capped requests, per-stream errors."""

from __future__ import annotations

import uuid as uuidlib

import numpy as np

from pingthings._proto.pingthings.platform import v1 as platform
from pingthings.server.service.multi_windows import ENTRIES_PER_MESSAGE, WINDOWS_PER_MESSAGE
from pingthings.wire import points
from tests.conftest import AuthServer
from tests.server.helpers import create, insert
from tests.server.rawclient import RawClient

METHOD = "/pingthings.platform.v1.Platform/MultiAlignedWindows"
T0 = 1_000_000_000_000


def _call(
    client: RawClient, request: platform.MultiAlignedWindowsParams
) -> list[platform.MultiAlignedWindowsResponse]:
    call = client.channel.unary_stream(METHOD)
    replies = call(bytes(request), metadata=client.metadata, timeout=60)
    return [platform.MultiAlignedWindowsResponse.parse(r) for r in replies]


def test_replies_are_bounded_and_a_long_stream_is_split(server_endpoint: str, unique_collection: str) -> None:
    with RawClient(server_endpoint) as client:
        long = create(client, unique_collection + "/long", {"name": "long"})
        n = 2 * WINDOWS_PER_MESSAGE + 123
        times = T0 + np.arange(n, dtype=np.int64) * 1024
        insert(client, long, times, np.arange(n, dtype=np.float64))
        short = create(client, unique_collection + "/short", {"name": "short"})
        insert(client, short, times[:10], np.ones(10))
        missing = [uuidlib.uuid4().bytes for _ in range(ENTRIES_PER_MESSAGE + 5)]
        request = platform.MultiAlignedWindowsParams(
            uuids=[long, short, *missing], start=T0, end=T0 + n * 1024, point_width=10
        )
        replies = _call(client, request)
    assert all(r.stat is None for r in replies)
    assert all(len(r.streams) <= ENTRIES_PER_MESSAGE for r in replies)
    assert all(sum(len(e.values) for e in r.streams) <= WINDOWS_PER_MESSAGE for r in replies)
    entries = [e for r in replies for e in r.streams]
    assert [e.index for e in entries[:3]] == [0, 0, 0]
    assert sum(len(e.values) for e in entries[:3]) == n
    times_back = np.array([v.time for e in entries[:3] for v in e.values])
    np.testing.assert_array_equal(times_back, times)
    assert entries[3].index == 1 and [v.count for v in entries[3].values] == [1] * 10
    assert [e.index for e in entries[4:]] == list(range(2, 2 + len(missing)))
    assert {(e.stat.code if e.stat else 0) for e in entries[4:]} == {404}
    assert len(replies) >= 3


def test_repeats_count_once_and_the_number_of_streams_is_capped(
    server_endpoint: str, unique_collection: str
) -> None:
    with RawClient(server_endpoint) as client:
        uu = create(client, unique_collection, {"name": "once"})
        insert(client, uu, np.array([T0], np.int64), np.array([1.0]))
        replies = _call(
            client, platform.MultiAlignedWindowsParams(uuids=[uu] * 5000, start=0, end=2 * T0, point_width=40)
        )
        assert [e.index for r in replies for e in r.streams] == [0]
        too_many = [uuidlib.uuid4().bytes for _ in range(1025)]
        refused = _call(client, platform.MultiAlignedWindowsParams(uuids=too_many, start=0, end=T0))
        assert len(refused) == 1 and refused[0].stat is not None and refused[0].stat.code == 421
        assert "1025 distinct streams" in refused[0].stat.msg
        mismatch = platform.MultiAlignedWindowsParams(uuids=[uu, uu], version_majors=[0], start=0, end=T0)
        assert _call(client, mismatch)[0].stat.code == 421  # type: ignore[union-attr]


def test_a_hidden_stream_is_missing_for_a_plain_key(auth_server: AuthServer, unique_collection: str) -> None:
    with (
        RawClient(auth_server.endpoint, auth_server.api_key) as user,
        RawClient(auth_server.endpoint, auth_server.admin_key) as admin,
    ):
        hidden = create(admin, unique_collection, {"name": "h", "hidden": "true"})
        insert(admin, hidden, np.array([T0], np.int64), np.array([1.0]))
        nothing = uuidlib.uuid4().bytes
        request = platform.MultiAlignedWindowsParams(
            uuids=[hidden, nothing], start=0, end=2 * T0, point_width=40
        )
        as_user = [e for r in _call(user, request) for e in r.streams]
        as_admin = [e for r in _call(admin, request) for e in r.streams]
    assert as_user[0].stat is not None and as_user[1].stat is not None
    assert (as_user[0].stat.code, as_user[0].stat.msg) == (as_user[1].stat.code, as_user[1].stat.msg)
    assert as_admin[0].stat is None and [v.count for v in as_admin[0].values] == [1]
    decoded = points.decode_windows(bytes(as_admin[0]))  # an entry decodes as AlignedWindowsResponse
    assert list(decoded.count) == [1]
