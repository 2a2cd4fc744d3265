"""Replies whose size the request decides are built and sent in bounded slices: the server's peak
memory follows the slice, not the result (checked on a server in its own process)."""

from __future__ import annotations

import subprocess

import numpy as np
import pyarrow as pa

from pingthings._proto import v5api
from pingthings.wire import points
from tests.server.helpers import create, insert
from tests.server.rawclient import RawClient
from tests.server.test_message_bounds import _peak_rss, server_process  # noqa: F401 (fixture)

MIB = 1 << 20
WINDOWS = 1 << 22  # about 200 MiB of window arrays if built at once


def test_many_windows_are_sent_in_slices(server_process: tuple[subprocess.Popen[str], str]) -> None:  # noqa: F811
    process, endpoint = server_process
    with RawClient(endpoint) as client:
        uu = create(client, "chunked/windows")
        times = np.arange(0, WINDOWS, 1024, dtype=np.int64)
        insert(client, uu, times, np.ones(len(times)))
        request = v5api.WindowsParams(uuid=uu, start=0, end=WINDOWS, width=1)
        client.stream("Windows", v5api.WindowsParams(uuid=uu, start=0, end=10, width=1))  # warm up
        before = _peak_rss(process.pid)
        total = counted = 0
        call = client.channel.unary_stream("/v5api.BTrDB/Windows")
        for reply in call(bytes(request), timeout=300):
            decoded = points.decode_windows(reply)
            assert decoded.stat is None
            total += len(decoded.time)
            counted += int(decoded.count.sum())
        grown = _peak_rss(process.pid) - before
        assert total == WINDOWS and counted == len(times)
        assert grown < 64 * MIB, f"peak RSS grew by {grown / MIB:.0f} MiB"

        # The Arrow flavour gives the same windows.
        arrow = client.stream("ArrowWindows", v5api.WindowsParams(uuid=uu, start=0, end=1 << 18, width=1))
        rows = sum(
            pa.ipc.open_stream(v5api.ArrowWindowsResponse.parse(r).arrow_bytes).read_all().num_rows
            for r in arrow
        )
        assert rows == 1 << 18
        assert _peak_rss(process.pid) - before < 64 * MIB
