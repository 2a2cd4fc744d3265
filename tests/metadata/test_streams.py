"""Stream metadata rules of the store: validation, conflicts, versions, lookups, persistence."""

from __future__ import annotations

import random
import threading
import uuid as uuidlib
from collections.abc import Mapping
from pathlib import Path

import pytest

from pingthings.server.errors import (
    AmbiguousStream,
    InvalidCollection,
    InvalidTagKey,
    InvalidTagValue,
    PropertyVersionMismatch,
    ReusedUUID,
    SameStream,
    StreamNotFound,
    WrongArgs,
)
from pingthings.server.metadata import ALLOWED_TAG_KEYS, MetadataStore, StreamRecord
from pingthings.wire.status import StatusCode


def new_uuid() -> bytes:
    return uuidlib.uuid4().bytes


def test_create_then_get_round_trips(store: MetadataStore) -> None:
    uid = new_uuid()
    tags = {"name": "L1MAG", "unit": "volts", "ingress": ""}
    annotations = {"poc": "alice", "Region": "west", "nullable": None}
    created = store.create_stream(uid, "sunshine/PMU1", tags, annotations)
    fetched = store.get_stream(uid)
    assert fetched == created
    assert (fetched.uuid, fetched.collection, fetched.tags, fetched.annotations) == (
        uid,
        "sunshine/PMU1",
        tags,
        annotations,
    )
    assert fetched.property_version == 1
    assert fetched.name == "L1MAG"
    assert store.stream_exists(uid)
    assert not store.stream_exists(new_uuid())


@pytest.mark.parametrize(
    "collection",
    ["", "x" * 256, "é" * 128, "bad\x00name", "\udcff"],
    ids=["empty", "256-bytes", "256-utf8-bytes", "nul", "lone-surrogate"],
)
def test_invalid_collection_is_407(store: MetadataStore, collection: str) -> None:
    with pytest.raises(InvalidCollection) as info:
        store.create_stream(new_uuid(), collection, {"name": "a"}, {})
    assert info.value.code == StatusCode.INVALID_COLLECTION


def test_collection_of_255_bytes_and_slashes_is_accepted(store: MetadataStore) -> None:
    store.create_stream(new_uuid(), "x" * 255, {"name": "a"}, {})
    store.create_stream(new_uuid(), "/lead/and/trail/", {"name": "a"}, {})
    assert store.list_collections() == sorted(["x" * 255, "/lead/and/trail/"])


def test_name_tag_is_required(store: MetadataStore) -> None:
    with pytest.raises(InvalidTagKey, match="name"):
        store.create_stream(new_uuid(), "c", {"unit": "V"}, {})
    for empty in ("", None):
        with pytest.raises(InvalidTagValue, match="name"):
            store.create_stream(new_uuid(), "c", {"name": empty}, {})


def test_every_documented_tag_key_is_accepted_and_others_refused(store: MetadataStore) -> None:
    tags = {key: f"v-{key}" for key in ALLOWED_TAG_KEYS}
    tags["hidden"] = "false"
    record = store.create_stream(new_uuid(), "c", tags, {})
    assert record.tags == tags
    with pytest.raises(InvalidTagKey) as info:
        store.create_stream(new_uuid(), "c", {"name": "b", "colour": "red"}, {})
    assert "colour" in info.value.msg and "distiller" in info.value.msg


def test_tag_and_annotation_value_limits(store: MetadataStore) -> None:
    store.create_stream(new_uuid(), "c", {"name": "n" * 255, "unit": None}, {"k": "v" * 255})
    with pytest.raises(InvalidTagValue):
        store.create_stream(new_uuid(), "c", {"name": "a", "unit": "u" * 256}, {})
    with pytest.raises(InvalidTagValue):
        store.create_stream(new_uuid(), "c", {"name": "a", "unit": "a\x00b"}, {})
    with pytest.raises(InvalidTagValue):
        store.create_stream(new_uuid(), "c", {"name": "a"}, {"k": "v" * 256})
    with pytest.raises(InvalidTagKey):
        store.create_stream(new_uuid(), "c", {"name": "a"}, {"": "v"})
    with pytest.raises(InvalidTagKey):
        store.create_stream(new_uuid(), "c", {"name": "a"}, {"k\x00": "v"})
    with pytest.raises(InvalidTagValue):
        store.create_stream(new_uuid(), "c", {"name": "a"}, {"k": 3})  # type: ignore[dict-item]
    assert len(store.lookup_streams()) == 1  # only the valid stream was stored


@pytest.mark.parametrize("bad", [b"short", b"x" * 17, "0123456789abcdef", None])
def test_uuid_must_be_16_bytes(store: MetadataStore, bad: object) -> None:
    with pytest.raises(WrongArgs):
        store.create_stream(bad, "c", {"name": "a"}, {})  # type: ignore[arg-type]
    with pytest.raises(WrongArgs):
        store.get_stream(bad)  # type: ignore[arg-type]


def test_create_conflicts(store: MetadataStore) -> None:
    uid = new_uuid()
    store.create_stream(uid, "c", {"name": "a"}, {})
    with pytest.raises(SameStream):
        store.create_stream(uid, "other", {"name": "z"}, {})
    with pytest.raises(AmbiguousStream, match="collection"):
        store.create_stream(new_uuid(), "c", {"name": "a", "unit": "V"}, {})
    store.create_stream(new_uuid(), "c2", {"name": "a"}, {})
    store.create_stream(new_uuid(), "c", {"name": "A"}, {})
    store.obliterate_stream(uid)
    with pytest.raises(ReusedUUID):
        store.create_stream(uid, "c", {"name": "a"}, {})
    # the name is free again once its stream is gone
    store.create_stream(new_uuid(), "c", {"name": "a"}, {})


def test_obliterate(store: MetadataStore) -> None:
    uid = new_uuid()
    store.create_stream(uid, "only", {"name": "a"}, {})
    assert store.list_collections() == ["only"]
    store.obliterate_stream(uid)
    with pytest.raises(StreamNotFound):
        store.get_stream(uid)
    with pytest.raises(StreamNotFound):
        store.obliterate_stream(uid)
    with pytest.raises(StreamNotFound):
        store.set_annotations(uid, 0, {"a": "b"})
    assert store.lookup_streams() == []
    assert store.list_collections() == []


def _matches(
    record: StreamRecord,
    collection: str,
    is_prefix: bool,
    tags: Mapping[str, str | None],
    annotations: Mapping[str, str | None],
    include_hidden: bool,
) -> bool:
    if is_prefix and not record.collection.startswith(collection):
        return False
    if not is_prefix and record.collection != collection:
        return False
    for wanted, have in ((tags, record.tags), (annotations, record.annotations)):
        for key, value in wanted.items():
            if key not in have or (value is not None and have[key] != value):
                return False
    hidden = (record.tags.get("hidden") or "").lower() in {"true", "1", "yes"}
    return include_hidden or not hidden


def test_lookup_matches_a_brute_force_filter(store: MetadataStore) -> None:
    rng = random.Random(7)
    collections = ["foo", "foo/bar", "foobar", "bar", "bar/foo", "fo", "Foo"]
    records: list[StreamRecord] = []
    for index in range(120):
        tags: dict[str, str | None] = {"name": f"s{index}"}
        if rng.random() < 0.6:
            tags["unit"] = rng.choice(["V", "A", "deg", None])
        if rng.random() < 0.2:
            tags["hidden"] = rng.choice(["true", "TRUE", "Yes", "1", "false", "0"])
        annotations = {
            key: rng.choice(["x", "y", None]) for key in rng.sample(["p", "q", "r"], rng.randint(0, 3))
        }
        records.append(store.create_stream(new_uuid(), rng.choice(collections), tags, annotations))
    queries = 0
    for collection in ["", "fo", "foo", "foo/", "bar", "Foo", "zzz"]:
        for is_prefix in (True, False):
            for tags_filter in (
                {},
                {"unit": None},
                {"unit": "V"},
                {"unit": "A", "name": None},
                {"name": "s7"},
            ):
                for ann_filter in ({}, {"p": None}, {"p": "x", "q": None}):
                    for include_hidden in (False, True):
                        expected = sorted(
                            r.uuid
                            for r in records
                            if _matches(r, collection, is_prefix, tags_filter, ann_filter, include_hidden)
                        )
                        got = store.lookup_streams(
                            collection, is_prefix, tags_filter, ann_filter, include_hidden
                        )
                        assert sorted(r.uuid for r in got) == expected, (collection, is_prefix, tags_filter)
                        queries += 1 if expected else 0
    assert queries > 50  # the oracle is not trivially empty
    hidden_collections = {r.collection for r in records if _matches(r, "", True, {}, {}, True)}
    visible_collections = {r.collection for r in records if _matches(r, "", True, {}, {}, False)}
    assert store.list_collections("", include_hidden=True) == sorted(hidden_collections)
    assert store.list_collections("", include_hidden=False) == sorted(visible_collections)
    for prefix in ["fo", "foo/", "b", "x"]:
        assert store.list_collections(prefix, True) == sorted(
            c for c in hidden_collections if c.startswith(prefix)
        )
    tag_usage, annotation_usage = store.metadata_usage("foo")
    in_prefix = [r for r in records if r.collection.startswith("foo")]
    assert tag_usage == {
        key: sum(key in r.tags for r in in_prefix) for key in {k for r in in_prefix for k in r.tags}
    }
    assert annotation_usage == {
        key: sum(key in r.annotations for r in in_prefix)
        for key in {k for r in in_prefix for k in r.annotations}
    }


def test_lookup_validates_filters(store: MetadataStore) -> None:
    with pytest.raises(InvalidTagKey):
        store.lookup_streams("", True, {"colour": None}, {}, False)
    with pytest.raises(InvalidCollection):
        store.lookup_streams("a\x00", True, {}, {}, False)


def test_prefix_with_highest_code_point(store: MetadataStore) -> None:
    top = "\U0010ffff"
    store.create_stream(new_uuid(), "a" + top, {"name": "1"}, {})
    store.create_stream(new_uuid(), "a" + top + "x", {"name": "2"}, {})
    store.create_stream(new_uuid(), "b", {"name": "3"}, {})
    assert store.list_collections("a" + top) == ["a" + top, "a" + top + "x"]
    assert [r.tags["name"] for r in store.lookup_streams(top, True)] == []
    assert len(store.lookup_streams("a", True)) == 2


def test_set_annotations_versions(store: MetadataStore) -> None:
    uid = new_uuid()
    store.create_stream(uid, "c", {"name": "a"}, {"keep": "1", "drop": "2", "nulled": "3"})
    with pytest.raises(PropertyVersionMismatch) as info:
        store.set_annotations(uid, 2, {"keep": "changed"})
    assert info.value.code == StatusCode.ANNOTATION_VERSION_MISMATCH
    assert store.get_stream(uid).annotations == {"keep": "1", "drop": "2", "nulled": "3"}
    assert store.get_stream(uid).property_version == 1
    record = store.set_annotations(uid, 1, {"new": "x", "nulled": None, "keep": "k"}, ["drop", "absent"])
    assert record.property_version == 2
    assert record.annotations == {"keep": "k", "new": "x"}
    assert store.get_stream(uid) == record
    assert store.set_annotations(uid, 0, {}).property_version == 3
    with pytest.raises(PropertyVersionMismatch):
        store.set_annotations(uid, 2, {"x": "y"})
    with pytest.raises(InvalidTagValue):
        store.set_annotations(uid, 3, {"x": "y" * 256})
    assert store.get_stream(uid).property_version == 3


def test_set_tags(store: MetadataStore) -> None:
    first, second = new_uuid(), new_uuid()
    store.create_stream(first, "c", {"name": "a", "unit": "V", "hidden": "false"}, {"an": "1"})
    store.create_stream(second, "d", {"name": "a"}, {})
    with pytest.raises(AmbiguousStream):
        store.set_tags(first, 1, {}, "d")
    with pytest.raises(InvalidTagKey, match="name"):
        store.set_tags(first, 1, {}, "", ["name"])
    with pytest.raises(InvalidTagKey, match="name"):
        store.set_tags(first, 1, {"name": None}, "")
    with pytest.raises(InvalidTagValue):
        store.set_tags(first, 1, {"name": ""}, "")
    with pytest.raises(InvalidTagKey):
        store.set_tags(first, 1, {"colour": "red"}, "")
    with pytest.raises(PropertyVersionMismatch):
        store.set_tags(first, 5, {"unit": "A"}, "")
    assert store.get_stream(first).property_version == 1
    record = store.set_tags(first, 1, {"unit": None, "ingress": "pmu"}, "", ["hidden"])
    assert (record.collection, record.tags, record.property_version) == (
        "c",
        {"name": "a", "ingress": "pmu"},
        2,
    )
    assert record.annotations == {"an": "1"}
    moved = store.set_tags(first, 0, {"name": "b", "hidden": "YES"}, "d/e")
    assert moved.collection == "d/e" and moved.property_version == 3
    assert store.get_stream(first) == moved
    assert store.list_collections() == ["d"]
    assert store.list_collections(include_hidden=True) == ["d", "d/e"]
    assert store.lookup_streams("d/e", False) == []
    assert store.lookup_streams("d/e", False, include_hidden=True) == [moved]
    # the old name in the old collection is free again
    store.create_stream(new_uuid(), "c", {"name": "a"}, {})


def test_record_write_keeps_stream_and_ignores_unknown(store: MetadataStore) -> None:
    uid = new_uuid()
    record = store.create_stream(uid, "c", {"name": "a"}, {})
    store.record_write(uid, 1_000, 10)
    store.record_write(new_uuid(), 1_000, 10)
    assert store.get_stream(uid) == record


def test_everything_survives_reopening(db_path: Path) -> None:
    uid, gone = new_uuid(), new_uuid()
    with MetadataStore(db_path) as meta:
        meta.create_stream(uid, "c/d", {"name": "a", "unit": "V"}, {"k": "v"})
        meta.set_annotations(uid, 1, {"k2": "v2"})
        meta.create_stream(gone, "c", {"name": "b"}, {})
        meta.obliterate_stream(gone)
        expected = meta.get_stream(uid)
    with MetadataStore(db_path) as meta:
        assert meta.get_stream(uid) == expected
        assert meta.list_collections() == ["c/d"]
        with pytest.raises(ReusedUUID):
            meta.create_stream(gone, "c", {"name": "b"}, {})


def test_closed_store_refuses_calls(db_path: Path) -> None:
    meta = MetadataStore(db_path)
    meta.close()
    meta.close()
    with pytest.raises(Exception, match="closed"):
        meta.get_stream(new_uuid())


def test_concurrent_creates_from_threads(store: MetadataStore) -> None:
    errors: list[BaseException] = []
    ambiguous: list[int] = []

    def worker(index: int) -> None:
        for item in range(25):
            try:
                # every pair of threads fights over the same names: exactly one must win each
                store.create_stream(new_uuid(), f"t{index // 2}", {"name": f"n{item}"}, {})
            except AmbiguousStream:
                ambiguous.append(item)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.lookup_streams()) == 4 * 25
    assert len(ambiguous) == 4 * 25


def test_wrongly_typed_arguments_get_clear_errors(store: MetadataStore) -> None:
    uid = new_uuid()
    with pytest.raises(InvalidTagKey, match="name"):
        store.create_stream(uid, "c", None, None)  # type: ignore[arg-type]
    with pytest.raises(WrongArgs, match="tags"):
        store.create_stream(uid, "c", [("name", "a")], {})  # type: ignore[arg-type]
    record = store.create_stream(uid, "c", {"name": "a"}, None)
    assert record.annotations == {}
    with pytest.raises(WrongArgs, match="keys"):
        store.set_annotations(uid, 0, {}, "key")
    with pytest.raises(WrongArgs, match="changes"):
        store.set_annotations(uid, 0, "k=v")  # type: ignore[arg-type]
    with pytest.raises(WrongArgs):
        store.set_annotations(uid, -1, {"k": "v"})
    assert store.get_stream(uid) == record
