"""Retention policies in the store, and their enforcement on a real engine."""

from __future__ import annotations

import itertools
import random
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pingthings.server.engine import Engine
from pingthings.server.errors import InvalidCollection, ObjectNotFound, StreamNotFound, WrongArgs
from pingthings.server.metadata import MetadataStore, RetentionPolicy
from pingthings.server.metadata.retention_store import collection_ancestry
from pingthings.server.retention import enforce_retention
from pingthings.wire.limits import MIN_TIME, TIME_LIMIT

DAY = 86_400 * 10**9
NOW = 1_700_000_000 * 10**9


def new_stream(meta: MetadataStore, collection: str, name: str = "s") -> bytes:
    uid = uuidlib.uuid4().bytes
    meta.create_stream(uid, collection, {"name": name}, {})
    return uid


def test_collection_ancestry() -> None:
    assert collection_ancestry("a/b/c") == ["a/b/c", "a/b", "a"]
    assert collection_ancestry("a") == ["a"]
    assert collection_ancestry("foo/") == ["foo/", "foo"]
    assert collection_ancestry("/x") == ["/x"]


def test_collection_properties(store: MetadataStore) -> None:
    with pytest.raises(ObjectNotFound):
        store.get_collection_properties("nowhere")
    new_stream(store, "site")
    assert store.get_collection_properties("site").retention is None
    store.set_collection_retention("future", 7 * DAY)  # no streams yet: allowed
    assert store.get_collection_properties("future").retention == RetentionPolicy(7 * DAY, False)
    store.set_collection_retention("future", None, True)
    assert store.get_collection_properties("future").retention == RetentionPolicy(None, True)
    store.clear_collection_retention("future")
    with pytest.raises(ObjectNotFound):
        store.get_collection_properties("future")
    for bad in (0, -1, 1.5, True, "7d"):
        with pytest.raises(WrongArgs):
            store.set_collection_retention("site", bad)  # type: ignore[arg-type]
    with pytest.raises(WrongArgs):
        store.set_collection_retention("site", DAY, "yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidCollection):
        store.set_collection_retention("", DAY)


def test_stream_retention_requires_a_stream(store: MetadataStore) -> None:
    ghost = uuidlib.uuid4().bytes
    with pytest.raises(StreamNotFound):
        store.set_stream_retention(ghost, DAY)
    with pytest.raises(StreamNotFound):
        store.get_stream_retention(ghost)
    with pytest.raises(StreamNotFound):
        store.clear_stream_retention(ghost)
    uid = new_stream(store, "c")
    store.set_stream_retention(uid, DAY)
    store.obliterate_stream(uid)
    assert store.retention_targets() == []


def test_a_hidden_stream_follows_only_its_own_policy(store: MetadataStore) -> None:
    shown = new_stream(store, "plant/a", "shown")
    hidden = uuidlib.uuid4().bytes
    store.create_stream(hidden, "plant/a", {"name": "secret", "hidden": "true"}, {})
    store.set_collection_retention("plant", DAY, override_per_stream=True)
    assert store.retention_targets() == [(shown, DAY)]  # a collection policy never reaches it
    store.set_stream_retention(hidden, 2 * DAY)
    assert sorted(store.retention_targets()) == sorted([(shown, DAY), (hidden, 2 * DAY)])


def _oracle(
    collection: str, own: RetentionPolicy | None, policies: dict[str, RetentionPolicy]
) -> RetentionPolicy | None:
    """The documented rule, written independently: overriding ancestors first, then own, then nearest."""
    parts = collection.split("/")
    candidates = ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]
    applicable = [policies[c] for c in candidates if c in policies]
    overriding = [p for p in applicable if p.override_per_stream]
    if overriding:
        return overriding[0]
    if own is not None:
        return own
    return applicable[0] if applicable else None


def test_effective_policy_matches_the_rule(store: MetadataStore) -> None:
    rng = random.Random(11)
    collections = ["a", "a/b", "a/b/c", "a/bc", "ab", "x/y"]
    streams = {new_stream(store, c, f"s{i}"): c for i, c in enumerate(collections * 3)}
    for trial in range(30):
        policies: dict[str, RetentionPolicy] = {}
        for collection in ["a", "a/b", "a/b/c", "ab", "x"]:
            store.clear_collection_retention(collection)
            if rng.random() < 0.5:
                policy = RetentionPolicy(rng.choice([None, DAY, 2 * DAY]), rng.random() < 0.3)
                store.set_collection_retention(
                    collection, policy.remove_older_than_ns, policy.override_per_stream
                )
                policies[collection] = policy
        owns: dict[bytes, RetentionPolicy | None] = {}
        for uid in streams:
            own = RetentionPolicy(rng.choice([None, 3 * DAY]), False) if rng.random() < 0.4 else None
            if own is None:
                store.clear_stream_retention(uid)
            else:
                store.set_stream_retention(uid, own.remove_older_than_ns)
            owns[uid] = own
        expected_targets = []
        for uid, collection in streams.items():
            expected = _oracle(collection, owns[uid], policies)
            assert store.get_stream_retention(uid) == (owns[uid], expected), (trial, collection)
            if expected is not None and expected.remove_older_than_ns is not None:
                expected_targets.append((uid, expected.remove_older_than_ns))
        assert store.retention_targets() == sorted(expected_targets)


def test_retention_survives_reopening(db_path: Path) -> None:
    with MetadataStore(db_path) as meta:
        uid = new_stream(meta, "a/b")
        meta.set_collection_retention("a", 5 * DAY, True)
        meta.set_stream_retention(uid, DAY)
    with MetadataStore(db_path) as meta:
        assert meta.get_collection_properties("a").retention == RetentionPolicy(5 * DAY, True)
        assert meta.get_stream_retention(uid) == (RetentionPolicy(DAY, False), RetentionPolicy(5 * DAY, True))


# -- enforcement on a real engine ------------------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    ticks = itertools.count(NOW, 10**6)
    eng = Engine(tmp_path / "engine.sqlite", clock=lambda: next(ticks))
    yield eng
    eng.close()


def add_stream(
    meta: MetadataStore, engine: Engine, collection: str, times: np.ndarray, name: str = "s"
) -> bytes:
    uid = new_stream(meta, collection, name)
    engine.create_stream(uid)
    if len(times):
        engine.insert(uid, times.astype(np.int64), np.arange(len(times), dtype=np.float64))
    return uid


def test_enforce_retention_trims_expired_points(store: MetadataStore, engine: Engine) -> None:
    rng = np.random.default_rng(5)
    times = np.unique(rng.integers(NOW - 30 * DAY, NOW + DAY, 5_000))
    old_only = np.array([NOW - 20 * DAY, NOW - 19 * DAY])
    kept = add_stream(store, engine, "grid/a", times, "kept")
    trimmed = add_stream(store, engine, "grid/b", times, "trimmed")
    emptied = add_stream(store, engine, "grid/c", old_only, "emptied")
    fresh = add_stream(store, engine, "grid/d", np.array([NOW - DAY // 2]), "fresh")
    empty = add_stream(store, engine, "grid/e", np.array([], dtype=np.int64), "empty")
    elsewhere = add_stream(store, engine, "other", times, "elsewhere")
    store.set_collection_retention("grid", 7 * DAY)
    store.set_stream_retention(kept, None)  # this stream opts out; the collection does not override
    versions_before = {
        uid: engine.latest_version(uid) for uid in (kept, trimmed, emptied, fresh, empty, elsewhere)
    }

    result = enforce_retention(store, engine, NOW)

    cutoff = NOW - 7 * DAY
    assert sorted(result) == sorted(
        [(trimmed, cutoff, versions_before[trimmed] + 1), (emptied, cutoff, versions_before[emptied] + 1)]
    )
    _, t, _ = engine.raw_values(trimmed, MIN_TIME, TIME_LIMIT - 1)
    np.testing.assert_array_equal(t, times[times >= cutoff])
    assert engine.count(emptied)[1] == 0
    for untouched in (kept, fresh, empty, elsewhere):
        assert engine.latest_version(untouched) == versions_before[untouched]
    assert engine.count(kept)[1] == len(times)
    # the old version still holds the expired points
    _, old_t, _ = engine.raw_values(trimmed, MIN_TIME, TIME_LIMIT - 1, version=versions_before[trimmed])
    np.testing.assert_array_equal(old_t, times)

    # a second pass at the same time has nothing to do
    assert enforce_retention(store, engine, NOW) == []
    # an override on the collection beats the stream's opt-out
    store.set_collection_retention("grid", 7 * DAY, True)
    later = NOW + 2 * DAY
    again = dict((uid, (cut, ver)) for uid, cut, ver in enforce_retention(store, engine, later))
    assert set(again) == {kept, trimmed}
    assert again[kept] == (later - 7 * DAY, versions_before[kept] + 1)
    _, t, _ = engine.raw_values(kept, MIN_TIME, TIME_LIMIT - 1)
    np.testing.assert_array_equal(t, times[times >= later - 7 * DAY])


def test_enforce_retention_skips_streams_missing_from_the_engine(
    store: MetadataStore, engine: Engine
) -> None:
    orphan = new_stream(store, "c", "orphan")  # in the metadata, never created in the engine
    live = add_stream(store, engine, "c", np.array([NOW - 10 * DAY, NOW]), "live")
    store.set_collection_retention("c", DAY)
    result = enforce_retention(store, engine, NOW)
    assert [uid for uid, _, _ in result] == [live]
    assert orphan not in {uid for uid, _, _ in result}


def test_enforce_retention_clamps_huge_windows(store: MetadataStore, engine: Engine) -> None:
    uid = add_stream(store, engine, "c", np.array([MIN_TIME + 1, NOW]))
    store.set_stream_retention(uid, 2**62)  # older than the time axis: nothing expires
    assert enforce_retention(store, engine, NOW) == []
    assert engine.count(uid)[1] == 2
