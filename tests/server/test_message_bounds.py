"""Request messages are bounded from their gRPC length prefix, before any body is buffered.

A prefix over the limit is answered at once with a v5 status (421, naming the size and the
limit) and the stream is reset, so the client stops sending; the server neither reads nor keeps
the body. Peak memory is checked on a server in its own process (``VmHWM``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from pingthings._proto import v5api
from pingthings.server import Server
from pingthings.wire import points
from tests.server.h2call import H2Call
from tests.server.helpers import create
from tests.server.processes import peak_rss
from tests.server.rawclient import RawClient, stat_of

MIB = 1 << 20


def test_huge_length_prefix_is_refused_before_the_body_is_buffered(
    server_process: tuple[subprocess.Popen[str], str],
) -> None:
    process, endpoint = server_process
    with RawClient(endpoint) as client:  # warm up: imports, first call
        uu = create(client, "bounds/prefix")
        client.stream("RawValues", v5api.RawValuesParams(uuid=uu, start=0, end=10))
    before = peak_rss(process.pid)
    with H2Call(endpoint, "/v5api.BTrDB/Insert") as call:
        call.send(prefix_length=2**31, body_size=150 * MIB)
        result = call.finish()
    grown = peak_rss(process.pid) - before
    assert result.reset, "the server did not reset the stream"
    replies = result.messages()
    assert len(replies) == 1, result
    stat = stat_of(replies[0])
    assert stat is not None and stat.code == 421, stat
    assert str(2**31) in stat.msg and str(64 * MIB) in stat.msg, stat.msg
    assert result.body_sent < 32 * MIB, f"the server let {result.body_sent} body bytes in"
    assert grown < 32 * MIB, f"peak RSS grew by {grown / MIB:.0f} MiB"
    with RawClient(endpoint) as client:
        assert client.info().major_version == 5


def test_prefix_claiming_more_than_the_stream_carries_is_refused(server: Server) -> None:
    with H2Call(server.endpoint, "/v5api.BTrDB/Info") as call:
        call.send(prefix_length=2**31, body_size=1024, end=True)
        result = call.finish()
    replies = result.messages()
    assert len(replies) == 1, result
    stat = stat_of(replies[0])
    assert stat is not None and stat.code == 421, stat


def test_short_body_under_the_limit_is_a_421_not_a_crash(server: Server) -> None:
    with H2Call(server.endpoint, "/v5api.BTrDB/Info") as call:
        call.send(prefix_length=4096, body_size=100, end=True)
        result = call.finish()
    replies = result.messages()
    assert len(replies) == 1, result
    stat = stat_of(replies[0])
    assert stat is not None and stat.code == 421 and "4096" in stat.msg, stat


def test_configured_limit_applies_to_every_service(tmp_path: Path) -> None:
    limit = 256 * 1024
    with Server(tmp_path, max_message_bytes=limit) as server, RawClient(server.endpoint) as client:
        uu = create(client, "bounds/limit")
        small = points.encode_insert(uu, np.arange(1000, dtype=np.int64), np.ones(1000))
        big = points.encode_insert(uu, np.arange(100_000, dtype=np.int64), np.ones(100_000))
        assert len(small) < limit < len(big)
        assert stat_of(client.unary("Insert", small)) is None
        stat = stat_of(client.unary("Insert", big))
        assert stat is not None and stat.code == 421 and str(limit) in stat.msg, stat
        # The platform service is bounded the same way.
        call = client.channel.unary_unary("/pingthings.platform.v1.Platform/VersionAtTime")
        reply = call(b"\x0a" + b"\xff\xff\x7f" + b"\0" * 0x1FFFFF, timeout=30)
        stat = stat_of(reply)
        assert stat is not None and stat.code == 421, stat
        assert client.info().major_version == 5
