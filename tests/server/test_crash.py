"""Crash safety: SIGKILL the server process mid-ingest; every acknowledged insert is back after restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from pingthings._proto import v5api
from pingthings.wire import points
from tests.server.helpers import create
from tests.server.rawclient import RawClient, stat_code

BATCH = 2000


def start_server(data: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "pingthings.server", "--data", str(data), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    line = process.stdout.readline()  # type: ignore[union-attr]
    assert "listening on" in line, line
    return process, line.strip().rsplit(" ", 1)[-1]


def batch_times(i: int) -> np.ndarray:
    return np.arange(i * BATCH, (i + 1) * BATCH, dtype=np.int64) * 1_000_000


def test_acknowledged_inserts_survive_sigkill(tmp_path: Path) -> None:
    process, endpoint = start_server(tmp_path)
    acked: list[int] = []
    enough = threading.Event()
    try:
        with RawClient(endpoint) as client:
            uu = create(client, "crash")

            def ingest() -> None:
                i = 0
                try:
                    while True:
                        payload = points.encode_insert(uu, batch_times(i), np.full(BATCH, float(i)))
                        if stat_code(client.unary("Insert", payload, timeout=10)) != 0:
                            return
                        acked.append(i)
                        if len(acked) >= 25:
                            enough.set()
                        i += 1
                except Exception:  # the server died under us: expected
                    return
                finally:
                    enough.set()

            writer = threading.Thread(target=ingest)
            writer.start()
            assert enough.wait(60)
            process.send_signal(signal.SIGKILL)
            process.wait(30)
            writer.join(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert len(acked) >= 25
    process, endpoint = start_server(tmp_path)
    try:
        with RawClient(endpoint) as client:
            replies = client.stream("RawValues", v5api.RawValuesParams(uuid=uu, start=0, end=10**15))
            decoded = [points.decode_raw_values(p) for p in replies]
            times = np.concatenate([d.times for d in decoded])
            values = np.concatenate([d.values for d in decoded])
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    expected = np.concatenate([batch_times(i) for i in acked])
    assert np.isin(expected, times).all()
    batches_present = np.unique(values).astype(int)
    assert set(acked) <= set(batches_present.tolist())
    for i in batches_present.tolist():  # any batch present is present whole (an insert is atomic)
        np.testing.assert_array_equal(times[values == i], batch_times(i))


SMALL = 120


def small_times(i: int) -> np.ndarray:
    return np.arange(i * SMALL, (i + 1) * SMALL, dtype=np.int64) * 1_000_000


def test_acknowledged_concurrent_small_inserts_survive_sigkill(tmp_path: Path) -> None:
    """Many clients inserting at once: their inserts are journaled in shared groups by the ingest
    writer; every acknowledged one is back after a SIGKILL, whole."""
    process, endpoint = start_server(tmp_path)
    writers = 8
    acked: list[list[int]] = [[] for _ in range(writers)]
    uuids: list[bytes] = []
    enough = threading.Barrier(writers + 1)
    try:
        with RawClient(endpoint) as setup:
            uuids = [create(setup, "crash-many") for _ in range(writers)]

        def ingest(k: int) -> None:
            i = 0
            try:
                with RawClient(endpoint) as client:
                    while True:
                        payload = points.encode_insert(uuids[k], small_times(i), np.full(SMALL, float(i)))
                        if stat_code(client.unary("Insert", payload, timeout=10)) != 0:
                            return
                        acked[k].append(i)
                        i += 1
                        if i == 40:
                            enough.wait(60)
            except Exception:  # the server died under us: expected
                return
            finally:
                if i < 40:
                    enough.abort()

        threads = [threading.Thread(target=ingest, args=(k,)) for k in range(writers)]
        for thread in threads:
            thread.start()
        enough.wait(120)  # every writer has 40 acknowledged inserts and goes on inserting
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        for thread in threads:
            thread.join(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    process, endpoint = start_server(tmp_path)
    try:
        with RawClient(endpoint) as client:
            for k, uu in enumerate(uuids):
                replies = client.stream("RawValues", v5api.RawValuesParams(uuid=uu, start=0, end=10**15))
                decoded = [points.decode_raw_values(p) for p in replies]
                times = np.concatenate([d.times for d in decoded])
                values = np.concatenate([d.values for d in decoded])
                assert len(acked[k]) >= 40
                assert set(acked[k]) <= set(np.unique(values).astype(int).tolist())
                for i in np.unique(values).astype(int).tolist():  # present means present whole
                    np.testing.assert_array_equal(times[values == i], small_times(i))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
