"""Per-request bounds: SQL text length (checked before parsing) and the streams one multi-stream
request may name (repeats count once)."""

from __future__ import annotations

import json
import subprocess
import uuid as uuidlib
from pathlib import Path

import numpy as np
import pyarrow as pa

from pingthings._proto import v5api
from pingthings.server import Server
from tests.server.helpers import create, insert
from tests.server.processes import peak_rss
from tests.server.rawclient import RawClient, stat_of

MIB = 1 << 20


def _sql(client: RawClient, query: str, params: list[str] | None = None) -> tuple[v5api.Status | None, list]:
    replies = client.stream("SQLQuery", v5api.SqlQueryParams(query=query, params=params or []))
    rows = [json.loads(r) for p in replies for r in v5api.SqlQueryResponse.parse(p).sql_query_row]
    return stat_of(replies[-1]), rows


def test_long_sql_text_is_refused_before_parsing(server_process: tuple[subprocess.Popen[str], str]) -> None:
    process, endpoint = server_process
    literal = "x" * MIB
    with RawClient(endpoint) as client:
        create(client, "bounds/sql", {"name": literal[:100]})
        stat, _ = _sql(client, "SELECT 1")
        assert stat is None
        before = peak_rss(process.pid)
        stat, _ = _sql(client, f"SELECT uuid FROM streams WHERE name = '{literal}'")
        grown = peak_rss(process.pid) - before
        assert stat is not None and stat.code == 441, stat
        assert str(64 * 1024) in stat.msg and "parameter" in stat.msg, stat.msg
        assert grown < 32 * MIB, f"peak RSS grew by {grown / MIB:.0f} MiB"
        # The same bytes as a parameter are fine.
        stat, rows = _sql(client, "SELECT uuid FROM streams WHERE name = $1", [literal])
        assert stat is None and rows == []


def test_repeated_uuids_count_once_and_distinct_streams_are_capped(tmp_path: Path) -> None:
    with Server(tmp_path, max_streams_per_request=3) as server, RawClient(server.endpoint) as client:
        streams = [create(client, "bounds/fanout") for _ in range(4)]
        for uu in streams:
            insert(client, uu, np.arange(1, 101, dtype=np.int64), np.ones(100))
        replies = client.stream(
            "ArrowMultiValues", v5api.ArrowMultiValuesParams(uuid=[streams[0]] * 1000, start=0, end=1000)
        )
        tables = [
            pa.ipc.open_stream(v5api.ArrowMultiValuesResponse.parse(r).arrow_bytes).read_all()
            for r in replies
        ]
        assert tables[0].column_names == ["time", str(uuidlib.UUID(bytes=streams[0]))]
        assert sum(t.num_rows for t in tables) == 100

        replies = client.stream(
            "ArrowMultiValues", v5api.ArrowMultiValuesParams(uuid=streams, start=0, end=1000)
        )
        stat = stat_of(replies[-1])
        assert stat is not None and stat.code == 421 and "3" in stat.msg and "4" in stat.msg, stat

        csv = v5api.GenerateCsvParams(
            query_type=v5api.GenerateCsvParamsQueryType.RAW_QUERY,
            start_time=0,
            end_time=1000,
            streams=[v5api.StreamCsvConfig(uuid=u, label=f"s{i}") for i, u in enumerate(streams)],
        )
        stat = stat_of(client.stream("GenerateCSV", csv)[-1])
        assert stat is not None and stat.code == 421, stat
        csv.streams = [v5api.StreamCsvConfig(uuid=streams[0], label="same")] * 50
        replies = client.stream("GenerateCSV", csv)
        rows = [v5api.GenerateCsvResponse.parse(r) for r in replies]
        assert rows[0].is_header and rows[0].row == ["Timestamp (ns)", "Human-Readable Time (UTC)", "same"]
        assert sum(len(r.row) for r in rows[1:]) == 100 * 3
