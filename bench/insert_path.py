"""The server's own CPU per 120-point insert, from request bytes in to reply bytes out, no sockets.

A server's stores and method table are started in this process and one connection
(:class:`~pingthings.server.grpc.protocol.GrpcProtocol`) is fed, call after call, the bytes our
client sends for a 120-point ``ArrowInsert`` (HEADERS and DATA in one read, as a sequential client
sends them); its writes go to a recording transport. The CPU time of this thread per call is what
the event loop's thread of a server spends on one sequential insert, less the socket system calls
and the loop's own turn (which ``bench/server_cpu.py`` includes). Other threads (merges, activity
records) are not counted. Its figures vary much less with the load of the machine than those of
a separate server process, so it suits comparing two versions of the insert path.

Usage: ``python bench/insert_path.py [--calls N] [--rounds R] [--timeout]``; ``PYTHONPATH=old/src``
measures an older checkout. ``--timeout`` sends ``grpc-timeout`` with each call, as the sync
client does when a call timeout is set.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from pingthings.server.config import ServerConfig
from pingthings.server.grpc.protocol import GrpcProtocol
from pingthings.server.runtime import ServerRuntime
from pingthings.timeseries.transport.metadata import encoding_headers, request_headers
from pingthings.wire import arrow_insert
from pingthings.wire.http2 import frames
from pingthings.wire.http2.hpack import HeaderEncoder
from pingthings.wire.protowire import LEN, encode_key, encode_len_field, encode_varint

T0 = 1_700_000_000 * 10**9
PERIOD = 8_333_333  # 120 Hz


class Transport:
    """Stands in for the socket transport: counts the writes."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: Any) -> None:
        self.writes += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        pass


def request(stream_id: int, block: bytes, sid: bytes, second: int) -> bytes:
    """The HEADERS and DATA frames of one ArrowInsert of 120 points (stream ``second``)."""
    times = T0 + second * 10**9 + np.arange(120, dtype=np.int64) * PERIOD
    values = np.round(7200 + np.sin(times / 1e9), 3)
    ipc = arrow_insert.encode(times, values)
    body = b"".join((encode_len_field(1, sid), encode_key(5, LEN), encode_varint(len(ipc)), ipc))
    message = b"\x00" + len(body).to_bytes(4, "big") + body
    return b"".join(
        (
            frames.headers_frames(stream_id, block, False, frames.DEFAULT_MAX_FRAME)[0],
            frames.data_header(stream_id, len(message), True),
            message,
        )
    )


async def run(calls: int, rounds: int, timeout: bool, data: Path) -> list[float]:
    runtime = ServerRuntime(ServerConfig(data_dir=data, listen="127.0.0.1:0"))
    await runtime.start()
    try:
        sid = uuid.uuid4().bytes
        runtime.meta.create_stream(sid, "bench/insert_path", {"name": "x"})
        runtime.engine.create_stream(sid)
        headers = request_headers(
            method="/v5api.BTrDB/ArrowInsert",
            authority="127.0.0.1",
            scheme="http",
            timeout=None,
            metadata=encoding_headers(None),
        )
        if timeout:
            headers.append((b"grpc-timeout", b"30S"))
        block = HeaderEncoder().encode(headers)
        grpc = runtime.grpc
        assert grpc is not None
        conn = GrpcProtocol(grpc)
        transport = Transport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        # the whole connection window at once: the replies never wait for a WINDOW_UPDATE
        grow = frames.window_update(0, frames.MAX_WINDOW - frames.DEFAULT_WINDOW)
        conn.data_received(frames.PREFACE + frames.settings_frame({}) + grow)
        n = calls * (rounds + 1)
        pending = [request(2 * k + 1, block, sid, k) for k in range(n)]
        results: list[float] = []
        k = 0
        for r in range(rounds + 1):  # the first round warms up
            spent = 0
            for _ in range(calls):
                data_in = pending[k]
                k += 1
                start = time.thread_time_ns()
                conn.data_received(data_in)
                if conn.calls:  # answered in a later turn of the loop
                    await asyncio.sleep(0)
                    while conn.calls:  # by the writer thread (a merge first): as a client waits
                        await asyncio.sleep(0.0002)
                spent += time.thread_time_ns() - start
            if r:
                results.append(spent / calls / 1000)
        if transport.writes < n or runtime.engine.count(sid)[1] != 120 * n:
            raise RuntimeError("not every insert was answered and stored")
        conn.connection_lost(None)
    finally:
        await runtime.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="inserts per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (default 5)")
    parser.add_argument("--timeout", action="store_true", help="send grpc-timeout with every call")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        per_call = asyncio.run(run(args.calls, args.rounds, args.timeout, Path(data)))
    origin = os.environ.get("PYTHONPATH") or "installed package"
    print(
        f"insert path, 120 points: {min(per_call):6.1f} us best, "
        f"{statistics.median(per_call):6.1f} us median "
        f"of {args.rounds} rounds of {args.calls} (event loop thread CPU; load {os.getloadavg()[0]:.2f}; "
        f"code {origin})"
    )


if __name__ == "__main__":
    main()
