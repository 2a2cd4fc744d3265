"""Fuzzing every RPC of both services with random and mutated request messages.

For each RPC, hypothesis sends random bytes and mutations (flipped, inserted, deleted, truncated
bytes) of a valid request naming a real stream. Every call must end with gRPC status OK and a v5
status in band that is never 500 (an internal error), the server must keep answering, and its peak
resident memory must stay under a fixed bound. The server runs in its own process so its memory
can be read.

The default run sends a few examples per RPC (well under a minute); ``nox -s fuzz`` (or
``PINGTHINGS_FUZZ_EXAMPLES=500``) runs the long version.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid as uuidlib
from collections.abc import Iterator

import betterproto2
import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pingthings._proto import v5api
from pingthings._proto.pingthings.platform import v1 as platform
from pingthings.wire import points
from tests.server.helpers import create, insert
from tests.server.processes import peak_rss
from tests.server.rawclient import RawClient, stat_of

EXAMPLES = int(os.environ.get("PINGTHINGS_FUZZ_EXAMPLES", "10"))
#: Peak RSS the server may reach during the whole fuzz run.
RSS_BOUND = 768 << 20
CALL_TIMEOUT = 20.0

V5 = v5api.BTrDbBase().__mapping__()
PLATFORM = platform.PlatformBase().__mapping__()
METHODS = {**V5, **PLATFORM}


class FuzzTarget:
    """The server process, a client, and a stream with data for seeds to name."""

    def __init__(self, process: subprocess.Popen[str], endpoint: str) -> None:
        self.process = process
        self.endpoint = endpoint
        self.client = RawClient(endpoint)
        self.uuid = create(self.client, "fuzz/target", {"name": "target"})
        insert(self.client, self.uuid, np.arange(1, 2001, dtype=np.int64) * 1000, np.ones(2000))


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    data = tmp_path_factory.mktemp("fuzz-data")
    process = subprocess.Popen(
        [sys.executable, "-m", "pingthings.server", "--data", str(data), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        assert "listening on" in line, line
        fuzz = FuzzTarget(process, line.strip().rsplit(" ", 1)[-1])
        yield fuzz
        fuzz.client.close()
    finally:
        process.terminate()
        process.communicate(timeout=60)


def seed(method: str, uu: bytes) -> bytes:
    """A valid request for ``method`` naming the stream ``uu``."""
    name = method.rsplit("/", 1)[1]
    if name == "Insert":
        return points.encode_insert(uu, np.array([5, 6], np.int64), np.array([1.0, 2.0]))
    request: betterproto2.Message = METHODS[method].request_type()
    values = {
        "uuid": uu,
        "start": 0,
        "end": 10**7,
        "end_time": 10**7,
        "collection": "fuzz",
        "prefix": "fuzz",
        "point_width": 10,
        "width": 10**5,
        "to_major": 3,
        "query": "SELECT uuid FROM streams WHERE name = $1",
        "params": ["target"],
        "name": "fuzz",
    }
    for field, value in values.items():
        if hasattr(request, field):
            current = getattr(request, field)
            if isinstance(current, list) and not isinstance(value, list):
                value = [value]
            try:
                setattr(request, field, value)
                bytes(request)
            except Exception:
                setattr(request, field, current)
    if isinstance(request, v5api.GenerateCsvParams):
        request.streams = [v5api.StreamCsvConfig(uuid=uu, label="x")]
    if isinstance(request, v5api.SubscriptionUpdate):
        request.uuid = [uu]
    return bytes(request)


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    """``base`` with a few random edits."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "varint"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 4))]
        elif op == "truncate":
            del data[pos:]
        elif op == "varint":  # a huge length or value
            data[pos:pos] = b"\xff\xff\xff\xff\x0f"
    return bytes(data)


def call(target: FuzzTarget, method: str, payload: bytes) -> list[bytes]:
    """One call with ``payload``; returns the replies (a Subscribe still open at the deadline: [])."""
    channel = target.client.channel
    cardinality = METHODS[method].cardinality.name
    if cardinality == "UNARY_UNARY":
        return [channel.unary_unary(method)(payload, timeout=CALL_TIMEOUT)]
    if cardinality == "UNARY_STREAM":
        return list(channel.unary_stream(method)(payload, timeout=CALL_TIMEOUT))
    try:
        return list(channel.stream_stream(method)(iter([payload]), timeout=2))
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return []
        raise


def check(target: FuzzTarget, method: str, payload: bytes) -> None:
    try:
        replies = call(target, method, payload)
    except grpc.RpcError as exc:
        pytest.fail(f"{method} ended with gRPC {exc.code()} {exc.details()!r} for {payload!r}")
    for reply in replies:
        stat = stat_of(reply) if not method.endswith("/Subscribe") else None
        assert stat is None or stat.code != 500, (method, payload, stat)
        assert stat is None or "Error" not in stat.msg, (method, payload, stat)
    assert target.client.info().major_version == 5
    rss = peak_rss(target.process.pid)
    assert rss < RSS_BOUND, f"server peak RSS {rss >> 20} MiB after {method}"


@pytest.mark.parametrize("method", sorted(METHODS))
def test_random_and_mutated_requests_get_a_status(target: FuzzTarget, method: str) -> None:
    base = seed(method, target.uuid)
    assert base is not None

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=EXAMPLES <= 10,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.one_of(st.binary(max_size=256), mutated(base)))
    def fuzz(payload: bytes) -> None:
        check(target, method, payload)

    fuzz()


def test_fuzz_covers_every_rpc_of_both_services() -> None:
    assert {m.rsplit("/", 1)[0] for m in METHODS} == {"/v5api.BTrDB", "/pingthings.platform.v1.Platform"}
    assert len(V5) >= 24 and len(PLATFORM) >= 15
    assert all(len(seed(m, uuidlib.uuid4().bytes)) >= 0 for m in METHODS)
