"""The server's background duties: retention passes with an injected clock, startup reconciliation."""

from __future__ import annotations

import threading
import time
import uuid as uuidlib
from pathlib import Path

import numpy as np

from pingthings._proto import v5api
from pingthings.server import Server
from pingthings.server.metadata import MetadataStore
from pingthings.server.runtime import METADATA_FILE
from pingthings.wire import points
from tests.server.helpers import create, insert
from tests.server.rawclient import RawClient


def stored_times(client: RawClient, uu: bytes) -> np.ndarray:
    replies = client.stream("RawValues", v5api.RawValuesParams(uuid=uu, start=0, end=10**15))
    return np.concatenate([points.decode_raw_values(p).times for p in replies])


def test_retention_task_trims_expired_data_with_the_injected_clock(tmp_path: Path) -> None:
    now = 10**12
    keep_ns = 3 * 10**11
    times = np.arange(0, now, 10**10, dtype=np.int64)
    with (
        Server(tmp_path, retention_interval=0.02, clock=lambda: now) as srv,
        RawClient(srv.endpoint) as client,
    ):
        uu = create(client, "retained")
        insert(client, uu, times, np.ones(len(times)))
        srv.runtime.meta.set_stream_retention(uu, keep_ns)
        want = times[times >= now - keep_ns]
        deadline = time.monotonic() + 20
        while len(stored_times(client, uu)) != len(want):
            assert time.monotonic() < deadline, "retention never trimmed the stream"
            threading.Event().wait(0.01)
        np.testing.assert_array_equal(stored_times(client, uu), want)


def test_streams_known_only_to_metadata_get_an_engine_tree_at_startup(tmp_path: Path) -> None:
    uu = uuidlib.uuid4().bytes
    meta = MetadataStore(tmp_path / METADATA_FILE)
    meta.create_stream(uu, "orphans", {"name": "o"}, {})
    meta.close()
    with Server(tmp_path) as srv, RawClient(srv.endpoint) as client:
        version = insert(client, uu, np.array([5, 6]), np.array([0.5, 0.6]))
        assert version > 10
        np.testing.assert_array_equal(stored_times(client, uu), [5, 6])
