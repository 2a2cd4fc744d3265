"""Replies whose size the request decides are built and sent in bounded slices: the server's peak
memory follows the slice, not the result (checked on a server in its own process)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import btrdb.grpcinterface.btrdb_pb2 as official
import numpy as np
import pyarrow as pa

from pingthings._proto import v5api
from pingthings.server import Server
from pingthings.wire import points
from tests.server.helpers import create, insert
from tests.server.processes import peak_rss
from tests.server.rawclient import RawClient, stat_of

MIB = 1 << 20
WINDOWS = 1 << 22  # about 200 MiB of window arrays if built at once


def test_many_windows_are_sent_in_slices(server_process: tuple[subprocess.Popen[str], str]) -> None:
    process, endpoint = server_process
    with RawClient(endpoint) as client:
        uu = create(client, "chunked/windows")
        times = np.arange(0, WINDOWS, 1024, dtype=np.int64)
        insert(client, uu, times, np.ones(len(times)))
        request = v5api.WindowsParams(uuid=uu, start=0, end=WINDOWS, width=1)
        client.stream("Windows", v5api.WindowsParams(uuid=uu, start=0, end=10, width=1))  # warm up
        before = peak_rss(process.pid)
        total = counted = 0
        call = client.channel.unary_stream("/v5api.BTrDB/Windows")
        for reply in call(bytes(request), timeout=300):
            decoded = points.decode_windows(reply)
            assert decoded.stat is None
            total += len(decoded.time)
            counted += int(decoded.count.sum())
        grown = peak_rss(process.pid) - before
        assert total == WINDOWS and counted == len(times)
        assert grown < 64 * MIB, f"peak RSS grew by {grown / MIB:.0f} MiB"

        # The Arrow flavour gives the same windows.
        arrow = client.stream("ArrowWindows", v5api.WindowsParams(uuid=uu, start=0, end=1 << 18, width=1))
        rows = sum(
            pa.ipc.open_stream(v5api.ArrowWindowsResponse.parse(r).arrow_bytes).read_all().num_rows
            for r in arrow
        )
        assert rows == 1 << 18
        assert peak_rss(process.pid) - before < 64 * MIB


CSV_POINTS = 200_000


def _csv_request(uu: bytes, end: int) -> v5api.GenerateCsvParams:
    return v5api.GenerateCsvParams(
        query_type=v5api.GenerateCsvParamsQueryType.RAW_QUERY,
        start_time=0,
        end_time=end,
        streams=[v5api.StreamCsvConfig(uuid=uu, label="a")],
    )


def test_generate_csv_is_built_a_chunk_at_a_time(server_process: tuple[subprocess.Popen[str], str]) -> None:
    process, endpoint = server_process
    with RawClient(endpoint) as client:
        first, second = create(client, "chunked/csv"), create(client, "chunked/csv")
        times = np.arange(CSV_POINTS, dtype=np.int64) * 10
        insert(client, first, times, np.arange(CSV_POINTS, dtype=np.float64))
        insert(client, second, times[::2] + 5, np.ones(CSV_POINTS // 2))
        client.stream("GenerateCSV", _csv_request(first, 100))  # warm up
        before = peak_rss(process.pid)
        request = _csv_request(first, 10**9)
        request.streams.append(v5api.StreamCsvConfig(uuid=second, label="b"))
        call = client.channel.unary_stream("/v5api.BTrDB/GenerateCSV")
        # Parsed by the C++ protobuf decoder: 300,000 messages take 13 s in a pure-Python one.
        rows = [official.GenerateCSVResponse.FromString(r).row for r in call(bytes(request), timeout=300)]
        grown = peak_rss(process.pid) - before
        assert rows[0] == ["Timestamp (ns)", "Human-Readable Time (UTC)", "a", "b"]
        assert len(rows) == 1 + CSV_POINTS + CSV_POINTS // 2
        assert rows[1] == ["0", "1970-01-01T00:00:00Z", "0.000000", ""]
        assert rows[2] == ["5", "1970-01-01T00:00:00Z", "", "1.000000"]
        assert [int(r[0]) for r in rows[1:]] == sorted(int(r[0]) for r in rows[1:])
        assert grown < 40 * MIB, f"peak RSS grew by {grown / MIB:.0f} MiB"


def test_generate_csv_stops_at_the_time_budget(tmp_path: Path) -> None:
    with Server(tmp_path, csv_seconds=0.3) as server, RawClient(server.endpoint) as client:
        uu = create(client, "chunked/budget")
        insert(client, uu, np.arange(CSV_POINTS, dtype=np.int64), np.ones(CSV_POINTS))
        replies = client.stream("GenerateCSV", _csv_request(uu, 10**9))
        stat = stat_of(replies[-1])
        assert stat is not None and stat.code == 426 and "time budget" in stat.msg, stat
        assert 1 < len(replies) < CSV_POINTS + 1
        assert client.info().major_version == 5


def test_multi_values_with_one_stream_repeated_stays_small(
    server_process: tuple[subprocess.Popen[str], str],
) -> None:
    process, endpoint = server_process
    with RawClient(endpoint) as client:
        uu = create(client, "chunked/multi")
        insert(client, uu, np.arange(100_000, dtype=np.int64), np.ones(100_000))
        client.stream("ArrowMultiValues", v5api.ArrowMultiValuesParams(uuid=[uu], start=0, end=10))  # warm up
        before = peak_rss(process.pid)
        replies = client.stream(
            "ArrowMultiValues", v5api.ArrowMultiValuesParams(uuid=[uu] * 1000, start=0, end=100_000)
        )
        grown = peak_rss(process.pid) - before
        tables = [
            pa.ipc.open_stream(v5api.ArrowMultiValuesResponse.parse(r).arrow_bytes).read_all()
            for r in replies
        ]
        assert sum(t.num_rows for t in tables) == 100_000 and tables[0].num_columns == 2
        assert grown < 32 * MIB, f"peak RSS grew by {grown / MIB:.0f} MiB"
