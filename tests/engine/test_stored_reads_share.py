"""RawBlocks reads on the engine: the server decodes a share of the uncached batches itself (sent as
columns, cached at once), and a read takes over the blocks an earlier read left to the late admission.
"""

from __future__ import annotations

import contextlib
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pingthings.server.engine import Engine, late_admission
from pingthings.server.engine.stored_reads import ColumnPiece, ServerShare, StoredPiece

T0 = 1_700_000_000_000_000_000
ALL = (-(1 << 60), (3 << 60) - 1)
POINTS = 600_000


@pytest.fixture
def cold(tmp_path: Path) -> Iterator[tuple[Engine, bytes, np.ndarray, np.ndarray]]:
    """A bulk-loaded 120 Hz stream (many grouped blocks, several read batches) in a freshly opened
    engine: nothing is cached."""
    path = tmp_path / "engine.sqlite3"
    uuid = uuidlib.uuid4().bytes
    rng = np.random.default_rng(3)
    t = T0 + np.arange(POINTS, dtype=np.int64) * 8_333_333 + rng.integers(-1000, 1000, POINTS)
    v = np.round(np.cumsum(rng.standard_normal(POINTS)), 2)
    with Engine(path) as writer:
        writer.create_stream(uuid)
        writer.insert(uuid, t, v)
    engine = Engine(path)
    try:
        yield engine, uuid, t, v
    finally:
        engine.close()


def _read(engine: Engine, uuid: bytes, share: float) -> tuple[list[StoredPiece], list[ColumnPiece]]:
    _, messages = engine.iter_raw_stored(uuid, *ALL, server_share=share)
    pieces = [p for m in messages for p in m]
    stored = [p for p in pieces if isinstance(p, StoredPiece)]
    return stored, [p for p in pieces if isinstance(p, ColumnPiece)]


@contextlib.contextmanager
def _held(engine: Engine) -> Iterator[None]:
    """Hold the late admission's thread before each batch: a crowd of cold reads under way (a read
    served from the cache would not do: pco batches are decoded meanwhile, their decode releases the
    GIL)."""
    with contextlib.ExitStack() as stack:
        for _ in range(late_admission.CROWD):
            stack.enter_context(engine._late.cold_reading())
        yield


def test_the_share_spreads_batches_evenly() -> None:
    share = ServerShare(0.4)
    taken = [share.take(100) for _ in range(100)]
    assert taken[0] is False  # the reader starts at once
    assert sum(taken) == 40
    assert all(not (a and b and c) for a, b, c in zip(taken, taken[1:], taken[2:], strict=False))
    assert not any(ServerShare(0.0).take(100) for _ in range(10))
    assert all(ServerShare(1.0).take(100) for _ in range(10))
    with pytest.raises(ValueError):
        ServerShare(1.5)


@pytest.mark.parametrize("share", [0.0, 0.4, 1.0])
def test_the_server_decodes_its_share_and_caches_it(
    cold: tuple[Engine, bytes, np.ndarray, np.ndarray], share: float
) -> None:
    engine, uuid, t, _ = cold
    stored, columns = _read(engine, uuid, share)
    decoded = sum(p.points for p in columns)
    assert decoded + sum(p.points for p in stored) == t.size
    if share == 0.0:
        assert decoded == 0
    elif share == 1.0:
        assert not stored
    else:
        assert 0.25 * t.size < decoded < 0.55 * t.size
    times = np.concatenate([x for p in columns for x in p.times]) if columns else np.empty(0, np.int64)
    assert np.isin(times, t).all()
    # what the server decoded is cached already; the rest once the late admission ran
    hits = engine.cache_info()["hits"]
    _, again = _read(engine, uuid, 0.0)
    assert sum(p.points for p in again) >= decoded
    assert engine.admission_idle(30)
    _, warm = _read(engine, uuid, 0.0)
    assert sum(p.points for p in warm) == t.size and engine.cache_info()["hits"] > hits


def test_a_read_takes_over_the_blocks_waiting_for_admission(
    cold: tuple[Engine, bytes, np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks sent stored wait for the late admission; a later read that decodes them itself caches
    them and they stop waiting (the thread, held back here by a crowd of cold reads, skips them)."""
    engine, uuid, t, v = cold
    monkeypatch.setattr(late_admission, "MAX_PAUSE", 120.0)
    with _held(engine):  # reads under way meanwhile: the thread waits
        stored, _ = _read(engine, uuid, 0.0)
        assert stored and not engine.admission_idle(0)
        _, columns = _read(engine, uuid, 1.0)  # decodes every waiting block itself
        assert engine.admission_idle(0)
    got_t = np.concatenate([x for p in columns for x in p.times])
    got_v = np.concatenate([x for p in columns for x in p.values])
    np.testing.assert_array_equal(got_t, t)
    np.testing.assert_array_equal(got_v, v)
    assert engine.iter_raw_pieces_in_memory(uuid, *ALL) is not None  # all of it cached


def test_blocks_sent_again_while_waiting_are_queued_once(
    cold: tuple[Engine, bytes, np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, uuid, _, _ = cold
    monkeypatch.setattr(late_admission, "MAX_PAUSE", 120.0)
    with _held(engine):
        _read(engine, uuid, 0.0)
        waiting = engine._late._pending
        _read(engine, uuid, 0.0)
        assert engine._late._pending == waiting
    assert engine.admission_idle(30)
    assert engine.iter_raw_pieces_in_memory(uuid, *ALL) is not None


def _bulk_engine(path: Path, planes: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[Engine, bytes]:
    """A cold engine on a bulk-loaded stream written as pco blocks, or as byte-plane blocks (what
    format 4 and older wrote)."""
    from pingthings.wire.blocks import leaf_codec

    if planes:
        monkeypatch.setattr(leaf_codec, "PCO_MIN_POINTS", 1 << 30)  # every leaf in byte planes
    uuid = uuidlib.uuid4().bytes
    t = T0 + np.arange(POINTS, dtype=np.int64) * 8_333_333
    with Engine(path) as writer:
        writer.create_stream(uuid)
        writer.insert(uuid, t, np.round(np.sin(np.arange(POINTS) / 50), 3))
    monkeypatch.undo()
    return Engine(path), uuid


@pytest.mark.parametrize("planes", [False, True])
def test_pco_blocks_are_admitted_while_a_warm_read_is_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, planes: bool
) -> None:
    # A B A B: B's blocks must reach the cache while A's warm read is being sent. pco blocks decode
    # with the GIL released, so the admission goes on; byte-plane batches still wait (up to
    # MAX_PAUSE), as their decode would hold the GIL against the warm read.
    engine, uuid = _bulk_engine(tmp_path / "engine.sqlite3", planes, monkeypatch)
    try:
        with engine._late.serving():  # a warm read under way, for longer than the admission takes
            stored, _ = _read(engine, uuid, 0.0)
            assert stored
            admitted = engine.admission_idle(late_admission.MAX_PAUSE / 2)
        assert admitted is not planes
        assert engine.admission_idle(30)
        again, columns = _read(engine, uuid, 0.0)
        assert not again and sum(c.points for c in columns) == POINTS  # wholly from the cache
    finally:
        engine.close()


@pytest.mark.parametrize("cold_reads", [1, 2])
def test_the_admission_waits_while_several_cold_reads_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cold_reads: int
) -> None:
    # A StreamSet read keeps two cold reads under way (the read gate's slots): the blocks its first
    # streams sent wait until the set is sent. One cold read (A B A B) does not stop the admission.
    engine, uuid = _bulk_engine(tmp_path / "engine.sqlite3", False, monkeypatch)
    try:
        with contextlib.ExitStack() as reads:
            for _ in range(cold_reads):
                reads.enter_context(engine._late.cold_reading())
            stored, _ = _read(engine, uuid, 0.0)
            assert stored
            admitted = engine.admission_idle(late_admission.MAX_PAUSE / 2)
        assert admitted is (cold_reads < late_admission.CROWD)
        assert engine.admission_idle(30)
        again, _ = _read(engine, uuid, 0.0)
        assert not again
    finally:
        engine.close()


def test_the_admission_waits_a_moment_after_the_cold_reads_thin_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Between two streams of a StreamSet read the cold reads drop below the crowd for a moment; the
    # admission must not take that moment to decode a batch against the set's next streams.
    engine, uuid = _bulk_engine(tmp_path / "engine.sqlite3", False, monkeypatch)
    monkeypatch.setattr(late_admission, "CROWD_LINGER", 60.0, raising=False)  # after _bulk_engine (it undoes)
    try:
        with engine._late.cold_reading():
            with engine._late.cold_reading():
                stored, _ = _read(engine, uuid, 0.0)
                assert stored
            # one cold read left: the crowd has thinned out, but only just
            assert not engine.admission_idle(late_admission.MAX_PAUSE / 2)
        assert engine.admission_idle(30)  # MAX_PAUSE still bounds each wait
        again, _ = _read(engine, uuid, 0.0)
        assert not again
    finally:
        engine.close()
