"""The hidden-stream matrix: every RPC that names a stream, called with a non-admin and an admin key.

For a non-admin key a hidden stream must behave exactly like a stream that does not exist: each
reply (status code and message, with the uuid text replaced) equals the reply for a random uuid
that names nothing. An admin key gets the stream's data. Listing calls (LookupStreams,
ListCollections, SQL, GetMetadataUsage) must leave the hidden stream out for a non-admin key.
"""

from __future__ import annotations

import json
import threading
import uuid as uuidlib
from collections.abc import Callable, Iterator

import grpc
import numpy as np
import pyarrow as pa
import pytest

from pingthings._proto import v5api
from pingthings._proto.pingthings.platform import v1 as platform
from pingthings.wire import points
from tests.conftest import AuthServer
from tests.server.helpers import create, insert, kv
from tests.server.rawclient import RawClient, stat_of
from tests.server.test_subscribe import wait_until

PLATFORM = "/pingthings.platform.v1.Platform/"

Outcome = list[tuple[int, str]]


def _statuses(replies: list[bytes], uu: bytes) -> Outcome:
    """Each reply's (code, message) with the uuid's text forms blanked out."""
    out = []
    for reply in replies:
        stat = stat_of(reply)
        msg = "" if stat is None else stat.msg
        for form in (str(uuidlib.UUID(bytes=uu)), uu.hex()):
            msg = msg.replace(form, "<uuid>")
        out.append((0 if stat is None else int(stat.code), msg))
    return out


def _platform(client: RawClient, method: str, request: bytes) -> bytes:
    call = client.channel.unary_unary(PLATFORM + method)
    return call(request, metadata=client.metadata, timeout=30)


def _platform_stream(client: RawClient, method: str, request: bytes) -> list[bytes]:
    call = client.channel.unary_stream(PLATFORM + method)
    return list(call(request, metadata=client.metadata, timeout=30))


def _subscribe(client: RawClient, uu: bytes) -> list[bytes]:
    """Subscribe to ``uu``; a refusal ends the call with one status message."""
    update = bytes(v5api.SubscriptionUpdate(op=v5api.SubscriptionUpdateOp.ADD_UUIDS, uuid=[uu]))
    # A refused subscription ends the call at once; an accepted one would wait for data, so the
    # request iterator never ends and a short deadline ends an accepted call instead.
    replies = client.bidi("Subscribe", [update], timeout=3)
    try:
        return list(replies)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return [b"accepted"]
        raise


T0 = 1_000_000_000
ARROW_TABLE = pa.table({"time": pa.array([T0 + 5], pa.timestamp("ns", tz="UTC")), "value": [1.0]})


def _arrow_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


#: RPC name -> call(client, uuid) returning the reply payloads.
CALLS: dict[str, Callable[[RawClient, bytes], list[bytes]]] = {
    "StreamInfo": lambda c, u: [c.unary("StreamInfo", v5api.StreamInfoParams(uuid=u))],
    "SetStreamAnnotations": lambda c, u: [
        c.unary("SetStreamAnnotations", v5api.SetStreamAnnotationsParams(uuid=u, changes=kv({"a": "b"})))
    ],
    "SetStreamTags(unhide)": lambda c, u: [
        c.unary("SetStreamTags", v5api.SetStreamTagsParams(uuid=u, tags=kv({"hidden": "false"})))
    ],
    "Flush": lambda c, u: [c.unary("Flush", v5api.FlushParams(uuid=u))],
    "Nearest": lambda c, u: [c.unary("Nearest", v5api.NearestParams(uuid=u, time=0))],
    "Insert": lambda c, u: [
        c.unary("Insert", points.encode_insert(u, np.array([T0 + 7], np.int64), np.array([2.0])))
    ],
    "Delete": lambda c, u: [c.unary("Delete", v5api.DeleteParams(uuid=u, start=0, end=1))],
    "ArrowInsert": lambda c, u: [
        c.unary("ArrowInsert", v5api.ArrowInsertParams(uuid=u, arrow_bytes=_arrow_bytes(ARROW_TABLE)))
    ],
    "RawValues": lambda c, u: c.stream("RawValues", v5api.RawValuesParams(uuid=u, start=0, end=2 * T0)),
    "AlignedWindows": lambda c, u: c.stream(
        "AlignedWindows", v5api.AlignedWindowsParams(uuid=u, start=0, end=2 * T0, point_width=20)
    ),
    "Windows": lambda c, u: c.stream(
        "Windows", v5api.WindowsParams(uuid=u, start=0, end=2 * T0, width=10**6)
    ),
    "Changes": lambda c, u: c.stream("Changes", v5api.ChangesParams(uuid=u, from_major=0, to_major=100)),
    "ArrowRawValues": lambda c, u: c.stream(
        "ArrowRawValues", v5api.ArrowRawValuesParams(uuid=u, start=0, end=2 * T0)
    ),
    "ArrowMultiValues": lambda c, u: c.stream(
        "ArrowMultiValues", v5api.ArrowMultiValuesParams(uuid=[u], start=0, end=2 * T0)
    ),
    "ArrowAlignedWindows": lambda c, u: c.stream(
        "ArrowAlignedWindows", v5api.AlignedWindowsParams(uuid=u, start=0, end=2 * T0, point_width=20)
    ),
    "ArrowWindows": lambda c, u: c.stream(
        "ArrowWindows", v5api.WindowsParams(uuid=u, start=0, end=2 * T0, width=10**6)
    ),
    "GenerateCSV": lambda c, u: c.stream(
        "GenerateCSV",
        v5api.GenerateCsvParams(
            query_type=v5api.GenerateCsvParamsQueryType.RAW_QUERY,
            start_time=0,
            end_time=2 * T0,
            streams=[v5api.StreamCsvConfig(uuid=u, label="x")],
        ),
    ),
    "Subscribe": _subscribe,
    "Platform.GetStreamRetention": lambda c, u: [
        _platform(c, "GetStreamRetention", bytes(platform.GetStreamRetentionParams(uuid=u)))
    ],
    "Platform.SetStreamRetention": lambda c, u: [
        _platform(
            c,
            "SetStreamRetention",
            bytes(
                platform.SetStreamRetentionParams(
                    uuid=u, retention=platform.Retention(remove_older_than_ns=10)
                )
            ),
        )
    ],
    "Platform.RawBlocks": lambda c, u: _platform_stream(
        c, "RawBlocks", bytes(platform.RawBlocksParams(uuid=u, start=0, end=2 * T0, block_formats=[4]))
    ),
    "Platform.VersionAtTime": lambda c, u: [
        _platform(c, "VersionAtTime", bytes(platform.VersionAtTimeParams(uuid=u, time=T0)))
    ],
    # Last: it removes the stream.
    "Obliterate": lambda c, u: [c.unary("Obliterate", v5api.ObliterateParams(uuid=u))],
}


def _hidden_stream(client: RawClient, collection: str) -> bytes:
    uu = create(client, collection, {"name": "secret", "hidden": "true"})
    insert(client, uu, np.array([T0, T0 + 1], np.int64), np.array([1.0, 2.0]))
    return uu


@pytest.mark.parametrize("rpc", list(CALLS))
def test_hidden_stream_is_a_missing_stream_to_a_non_admin_key(
    auth_server: AuthServer, unique_collection: str, rpc: str
) -> None:
    call = CALLS[rpc]
    with (
        RawClient(auth_server.endpoint, auth_server.api_key) as user,
        RawClient(auth_server.endpoint, auth_server.admin_key) as admin,
    ):
        hidden = _hidden_stream(admin, unique_collection)
        missing = uuidlib.uuid4().bytes
        as_missing = _statuses(call(user, missing), missing)
        as_hidden = _statuses(call(user, hidden), hidden)
        assert as_missing and as_missing[-1][0] == 404, as_missing
        assert as_hidden == as_missing
        # The stream is untouched: still hidden, its data unchanged, and the admin still reaches it.
        info = v5api.StreamInfoResponse.parse(admin.unary("StreamInfo", v5api.StreamInfoParams(uuid=hidden)))
        assert info.stat is None
        tags = {p.key: p.val.value if p.val else None for p in info.descriptor.tags}
        assert tags["hidden"] == "true"
        assert info.descriptor.annotations == []
        replies = admin.stream("RawValues", v5api.RawValuesParams(uuid=hidden, start=0, end=2 * T0))
        times = [int(t) for r in replies for t in points.decode_raw_values(r).times]
        assert times == [T0, T0 + 1]
        # The admin key reaches the hidden stream through the same call (no 404).
        admin_replies = call(admin, hidden)
        if admin_replies != [b"accepted"]:  # an accepted Subscribe has no status to look at
            assert all(code != 404 for code, _ in _statuses(admin_replies, hidden)), admin_replies


def test_listing_calls_leave_hidden_streams_out_for_non_admin_keys(
    auth_server: AuthServer, unique_collection: str
) -> None:
    with (
        RawClient(auth_server.endpoint, auth_server.api_key) as user,
        RawClient(auth_server.endpoint, auth_server.admin_key) as admin,
    ):
        hidden = _hidden_stream(admin, unique_collection + "/secret")
        visible = create(
            admin, unique_collection + "/open", {"name": "open"}, {"only_hidden_has_no_such": "x"}
        )
        admin.unary(
            "SetStreamAnnotations",
            v5api.SetStreamAnnotationsParams(uuid=hidden, changes=kv({"secret_key": "1"})),
        )

        def sql(client: RawClient) -> set[str]:
            replies = client.stream(
                "SQLQuery",
                v5api.SqlQueryParams(
                    query="SELECT uuid FROM streams WHERE collection LIKE $1",
                    params=[unique_collection + "%"],
                ),
            )
            rows = [json.loads(r) for p in replies for r in v5api.SqlQueryResponse.parse(p).sql_query_row]
            return {row["uuid"] for row in rows}

        def usage(client: RawClient) -> set[str]:
            reply = v5api.MetadataUsageResponse.parse(
                client.unary("GetMetadataUsage", v5api.MetadataUsageParams(prefix=unique_collection))
            )
            return {kc.key for kc in reply.annotations}

        assert sql(user) == {str(uuidlib.UUID(bytes=visible))}
        assert sql(admin) == {str(uuidlib.UUID(bytes=visible)), str(uuidlib.UUID(bytes=hidden))}
        assert usage(user) == {"only_hidden_has_no_such"}
        assert usage(admin) == {"only_hidden_has_no_such", "secret_key"}


def test_non_admin_key_may_hide_a_stream_and_then_loses_it(
    auth_server: AuthServer, unique_collection: str
) -> None:
    with RawClient(auth_server.endpoint, auth_server.api_key) as user:
        uu = create(user, unique_collection, {"name": "soon-hidden"})
        reply = user.unary("SetStreamTags", v5api.SetStreamTagsParams(uuid=uu, tags=kv({"hidden": "yes"})))
        assert stat_of(reply) is None
        after = stat_of(user.unary("StreamInfo", v5api.StreamInfoParams(uuid=uu)))
        assert after is not None and after.code == 404


def test_subscription_goes_quiet_while_the_stream_is_hidden(
    auth_server: AuthServer, unique_collection: str
) -> None:
    with (
        RawClient(auth_server.endpoint, auth_server.api_key) as user,
        RawClient(auth_server.endpoint, auth_server.admin_key) as admin,
    ):
        uu = create(admin, unique_collection, {"name": "flips"})
        done = threading.Event()

        def updates() -> Iterator[bytes]:
            yield bytes(v5api.SubscriptionUpdate(op=v5api.SubscriptionUpdateOp.ADD_UUIDS, uuid=[uu]))
            done.wait(60)

        replies = user.bidi("Subscribe", updates(), timeout=60)
        try:
            wait_until(lambda: auth_server.server.runtime.hub.subscriber_count(uu) == 1)

            def set_hidden(value: str) -> None:
                request = v5api.SetStreamTagsParams(uuid=uu, tags=kv({"hidden": value}))
                assert stat_of(admin.unary("SetStreamTags", request)) is None

            set_hidden("true")
            insert(admin, uu, np.array([T0 + 1], np.int64), np.array([1.0]))  # not for the user's eyes
            set_hidden("false")
            insert(admin, uu, np.array([T0 + 2], np.int64), np.array([2.0]))
            # Pushes follow commit order, so the first one the user gets shows what was skipped.
            first = v5api.SubscriptionResp.parse(next(replies))
            table = pa.ipc.open_stream(first.arrow_bytes).read_all()
            assert table.column(0).cast(pa.int64()).to_pylist() == [T0 + 2]
        finally:
            done.set()
            replies.cancel()
