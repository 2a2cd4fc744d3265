"""The ingest writer: concurrent inserts share journal commits, each is acknowledged once durable,
every stream keeps its order, and a lone insert takes no thread hop."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pingthings.server.config import ServerConfig
from pingthings.server.engine import Buffering, Engine, MergePolicy
from pingthings.server.engine.journal import journal_path
from pingthings.server.errors import BadValue, StreamNotFound
from pingthings.server.grpc.eager import start_eager
from pingthings.server.runtime import open_stores
from pingthings.server.service.ingest_writer import IngestWriter
from pingthings.wire.limits import FIRST_VERSION, MIN_TIME, TIME_LIMIT

T0 = 1_700_000_000 * 10**9


def second(i: int, stream: int = 0) -> tuple[np.ndarray, np.ndarray]:
    t = T0 + i * 10**9 + np.arange(120, dtype=np.int64) * 8_333_333
    return t, np.round(np.sin(t / 1e9 + stream), 3)


class Hub:
    """Records what is published, in order (the interface of the subscription hub)."""

    def __init__(self) -> None:
        self.batches: list[tuple[bytes, int]] = []

    def publish(self, uuid: bytes, times: np.ndarray, values: np.ndarray) -> None:
        self.batches.append((uuid, int(times[0])))


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Engine, Any]]:
    config = ServerConfig(data_dir=tmp_path, buffering=Buffering(max_points=600, max_age=3600.0))
    engine, meta = open_stores(config)
    yield engine, meta
    engine.close()
    meta.close()


def make_streams(engine: Engine, meta: Any, count: int) -> list[bytes]:
    uuids = [uuid.uuid4().bytes for _ in range(count)]
    for u in uuids:
        meta.create_stream(u, "ingest", {"name": u.hex()})
        engine.create_stream(u)
    return uuids


def test_concurrent_inserts_share_journal_commits(stores: tuple[Engine, Any]) -> None:
    engine, meta = stores
    uuids = make_streams(engine, meta, 40)
    hub = Hub()
    writer = IngestWriter(engine, meta, hub)

    async def main() -> list[int]:
        versions = await asyncio.gather(
            *(
                writer.insert(u, *second(i, k), MergePolicy.NEVER, None)
                for i in range(3)
                for k, u in enumerate(uuids)
            )
        )
        await writer.wait()
        return versions

    commits = engine._journal.commits
    assert asyncio.run(main()) == [FIRST_VERSION + 1] * 120
    assert engine._journal.commits - commits < 120 // 4  # most of them shared a commit
    assert [engine.count(u, MIN_TIME, TIME_LIMIT - 1)[1] for u in uuids] == [360] * 40
    for u in uuids:  # each stream's batches published in the order they were written
        assert [t for s, t in hub.batches if s == u] == [int(second(i)[0][0]) for i in range(3)]
    rows = meta.sql_query("select uuid, estimated_count_delta from streams where collection = 'ingest'", [])
    assert sorted(r["estimated_count_delta"] for r in rows) == [120] * 40  # activity columns written


def test_leftovers_errors_and_order_within_one_group(stores: tuple[Engine, Any]) -> None:
    engine, meta = stores
    (sid,) = make_streams(engine, meta, 1)
    hub = Hub()
    writer = IngestWriter(engine, meta, hub)
    bad = (np.array([T0 + 10**12]), np.array([np.nan]))

    async def main() -> list[Any]:
        calls = [writer.insert(sid, *second(i), MergePolicy.NEVER, None) for i in range(12)]
        calls.insert(3, writer.insert(sid, *bad, MergePolicy.NEVER, None))
        calls.append(writer.insert(uuid.uuid4().bytes, *second(0), MergePolicy.NEVER, None))
        results = await asyncio.gather(*calls, return_exceptions=True)
        await writer.wait()
        return results

    results = asyncio.run(main())
    assert isinstance(results[3], BadValue)
    assert isinstance(results[-1], StreamNotFound)
    versions = [r for r in results if isinstance(r, int)]
    # max_points 600: five seconds fit a buffer, the sixth insert merges it and starts the next.
    assert versions == sorted(versions) and versions[0] == FIRST_VERSION + 1 and versions[-1] > versions[0]
    times = engine.raw_values(sid, MIN_TIME, TIME_LIMIT - 1)[1]
    np.testing.assert_array_equal(times, np.concatenate([second(i)[0] for i in range(12)]))
    assert [t for _, t in hub.batches] == [int(second(i)[0][0]) for i in range(12)]


def test_lone_inserts_take_no_thread_hop(stores: tuple[Engine, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    engine, meta = stores
    (sid,) = make_streams(engine, meta, 1)
    writer = IngestWriter(engine, meta, Hub())
    handed: list[int] = []
    real_hand_over = writer._hand_over
    monkeypatch.setattr(writer, "_hand_over", lambda jobs: handed.append(len(jobs)) or real_hand_over(jobs))

    async def main() -> list[int]:
        versions = [await writer.insert(sid, *second(i), MergePolicy.NEVER, None) for i in range(4)]
        await writer.wait()
        return versions

    assert asyncio.run(main()) == [FIRST_VERSION + 1] * 4
    assert handed == []
    assert engine.count(sid, MIN_TIME, TIME_LIMIT - 1)[1] == 480


def test_the_lone_call_of_a_read_journals_in_its_first_step(stores: tuple[Engine, Any]) -> None:
    """Started as the only call of a read, an insert is durable, published and answered before its
    first step ends (no task); one the engine leaves over (its buffer full) goes to the thread."""
    engine, meta = stores
    (sid,) = make_streams(engine, meta, 1)
    hub = Hub()
    writer = IngestWriter(engine, meta, hub)
    versions: list[int] = []

    async def call(i: int) -> None:
        versions.append(await writer.insert(sid, *second(i), MergePolicy.NEVER, None))

    async def main() -> list[bool]:
        loop = asyncio.get_running_loop()
        finished = []
        for i in range(6):  # max_points 600: the sixth second does not fit the buffer
            task = start_eager(loop, call(i), lambda: None, lambda: None, alone=True)
            finished.append(task is None)
            if task is not None:
                await task
        await writer.wait()
        return finished

    assert asyncio.run(main()) == [True] * 5 + [False]
    assert versions == [FIRST_VERSION + 1] * 5 + [FIRST_VERSION + 2]
    assert [t for _, t in hub.batches] == [int(second(i)[0][0]) for i in range(6)]
    assert engine.count(sid, MIN_TIME, TIME_LIMIT - 1)[1] == 720


def test_a_lone_call_refused_by_the_engine_raises_its_error(stores: tuple[Engine, Any]) -> None:
    engine, meta = stores
    (sid,) = make_streams(engine, meta, 1)
    writer = IngestWriter(engine, meta, Hub())
    t, v = second(0)
    v[3] = np.nan
    errors: list[BaseException] = []

    async def call() -> None:
        try:
            await writer.insert(sid, t, v, MergePolicy.NEVER, None)
        except BadValue as exc:
            errors.append(exc)

    async def main() -> bool:
        return start_eager(asyncio.get_running_loop(), call(), lambda: None, lambda: None, alone=True) is None

    assert asyncio.run(main())
    assert len(errors) == 1 and engine.buffered_points() == 0


def test_acknowledged_group_survives_a_crash(tmp_path: Path) -> None:
    """Acknowledged means journaled: reopening without a clean close replays every point."""
    config = ServerConfig(data_dir=tmp_path, buffering=Buffering(max_age=3600.0))
    engine, meta = open_stores(config)
    uuids = make_streams(engine, meta, 10)
    writer = IngestWriter(engine, meta, Hub())

    async def main() -> None:
        await asyncio.gather(
            *(
                writer.insert(u, *second(i, k), MergePolicy.NEVER, None)
                for i in range(2)
                for k, u in enumerate(uuids)
            )
        )
        await writer.wait()

    asyncio.run(main())
    assert engine.buffered_points() == 2400  # nothing merged into the trees yet
    os.close(engine._journal._fd)  # drop the engine as a crash would: no merge, no clean close
    engine._store.close()
    meta.close()
    assert journal_path(engine.path).exists()
    with Engine(engine.path) as reopened:
        assert [reopened.count(u, MIN_TIME, TIME_LIMIT - 1)[1] for u in uuids] == [240] * 10


def test_wait_covers_inserts_of_its_own_loop_turn(stores: tuple[Engine, Any]) -> None:
    engine, meta = stores
    uuids = make_streams(engine, meta, 5)
    writer = IngestWriter(engine, meta, Hub())

    async def main() -> int:
        calls = [asyncio.ensure_future(writer.insert(u, *second(0), MergePolicy.NEVER, None)) for u in uuids]
        await asyncio.sleep(0)  # the calls hand their inserts over; their flush is not run yet
        await writer.wait()
        written = engine.buffered_points()
        await asyncio.gather(*calls)
        return written

    assert asyncio.run(main()) == 5 * 120
