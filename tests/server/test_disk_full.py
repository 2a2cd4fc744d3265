"""A full disk: a clear 426 saying so and how much space is needed, no acknowledged point lost, and
writes resume by themselves once space returns. Runs on a small tmpfs, which needs root."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pingthings._proto import v5api
from pingthings.server import Server
from pingthings.wire import points
from tests.server.helpers import create
from tests.server.rawclient import RawClient, stat_of

BATCH = 20_000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs mounted under ``tmp_path`` (skipped unless the test runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill up needs root; this test runs as a normal user")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root, but: {result.stderr.strip()})")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(directory: Path) -> Path:
    """Write a file until the disk has no room left; return it (delete it to free the space)."""
    filler = directory / "filler"
    chunk = b"\0" * (64 << 10)
    with open(filler, "wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(chunk)
            out.flush()
    return filler


def _insert(client: RawClient, uu: bytes, start: int) -> tuple[v5api.Status | None, np.ndarray, np.ndarray]:
    times = np.arange(start, start + BATCH, dtype=np.int64)
    values = np.random.default_rng(start).normal(size=BATCH)
    return stat_of(client.unary("Insert", points.encode_insert(uu, times, values))), times, values


def test_full_disk_is_reported_clearly_and_writes_resume(small_disk: Path) -> None:
    data_dir = small_disk / "data"
    acknowledged: dict[int, float] = {}
    with Server(data_dir) as server, RawClient(server.endpoint) as client:
        uu = create(client, "disk/full")
        for batch in range(3):
            stat, times, values = _insert(client, uu, batch * BATCH)
            assert stat is None, stat
            acknowledged.update(zip(times.tolist(), values.tolist(), strict=True))
        filler = _fill(small_disk)
        refused = None
        for batch in range(3, 40):
            stat, times, values = _insert(client, uu, batch * BATCH)
            if stat is None:
                acknowledged.update(zip(times.tolist(), values.tolist(), strict=True))
                continue
            refused = stat
            break
        assert refused is not None, "the disk never filled up"
        assert refused.code == 426, refused
        assert "full" in refused.msg and str(data_dir) in refused.msg and "MiB" in refused.msg, refused.msg
        assert "Error" not in refused.msg
        assert client.info().major_version == 5  # still serving

        filler.unlink()
        stat, times, values = _insert(client, uu, 1000 * BATCH)
        assert stat is None, stat  # resumed without a restart
        acknowledged.update(zip(times.tolist(), values.tolist(), strict=True))
        other = uuidlib.uuid4().bytes
        assert create(client, "disk/after", uu=other) == other

    with Server(data_dir) as server, RawClient(server.endpoint) as client:
        replies = client.stream("RawValues", v5api.RawValuesParams(uuid=uu, start=0, end=2**60))
        decoded = [points.decode_raw_values(r) for r in replies]
        stored = dict(
            zip(
                np.concatenate([d.times for d in decoded]).tolist(),
                np.concatenate([d.values for d in decoded]).tolist(),
                strict=True,
            )
        )
    assert stored == acknowledged
