"""Control-plane RPCs of the embedded server: Info, Create, StreamInfo, lookups, metadata changes."""

from __future__ import annotations

import json
import uuid as uuidlib
from collections.abc import Iterator

import pytest

from pingthings._proto import v5api
from pingthings.server import Server
from pingthings.wire.limits import FIRST_VERSION
from pingthings.wire.status import StatusCode
from tests.server.helpers import create, kv
from tests.server.rawclient import RawClient, stat_code, stat_of


@pytest.fixture
def client(server: Server) -> Iterator[RawClient]:
    with RawClient(server.endpoint) as c:
        yield c


def stream_info(client: RawClient, uu: bytes, **flags: bool) -> v5api.StreamInfoResponse:
    return v5api.StreamInfoResponse.parse(
        client.unary("StreamInfo", v5api.StreamInfoParams(uuid=uu, **flags))
    )


def lookup(
    client: RawClient,
    collection: str,
    prefix: bool,
    tags: dict | None = None,
    annotations: dict | None = None,
) -> list[v5api.StreamDescriptor]:
    replies = client.stream(
        "LookupStreams",
        v5api.LookupStreamsParams(
            collection=collection,
            is_collection_prefix=prefix,
            tags=kv(tags or {}),
            annotations=kv(annotations or {}),
        ),
    )
    out = []
    for payload in replies:
        message = v5api.LookupStreamsResponse.parse(payload)
        assert message.stat is None, message.stat
        out.extend(message.results)
    return out


def as_dict(pairs: list[v5api.KeyOptValue]) -> dict[str, str | None]:
    return {p.key: (p.val.value if p.val is not None else None) for p in pairs}


def test_info_reports_v5_and_itself_as_proxy(client: RawClient, server: Server) -> None:
    info = client.info()
    assert info.stat is None
    assert info.major_version == 5 and info.minor_version >= 30
    assert info.proxy is not None and list(info.proxy.proxy_endpoints) == [server.endpoint]


def test_create_then_stream_info(client: RawClient, unique_collection: str) -> None:
    tags = {"name": "volts", "unit": "V"}
    annotations = {"site": "north", "empty": ""}
    uu = create(client, unique_collection, tags, annotations)
    info = stream_info(client, uu)
    assert info.stat is None
    assert info.version_major == FIRST_VERSION
    d = info.descriptor
    assert d is not None and d.uuid == uu and d.collection == unique_collection
    assert as_dict(d.tags) == tags and as_dict(d.annotations) == annotations
    assert d.property_version == 1
    only_version = stream_info(client, uu, omit_descriptor=True)
    assert only_version.version_major == FIRST_VERSION and only_version.descriptor.uuid == uu
    assert not only_version.descriptor.collection
    both = stream_info(client, uu, omit_descriptor=True, omit_version=True)
    assert both.stat.code == StatusCode.WRONG_ARGS


def test_stream_info_unknown_and_bad_uuid(client: RawClient) -> None:
    missing = stream_info(client, uuidlib.uuid4().bytes)
    assert missing.stat.code == StatusCode.NO_SUCH_STREAM and missing.stat.msg == "stream does not exist"
    assert stream_info(client, b"short").stat.code == StatusCode.WRONG_ARGS


def test_create_conflicts_use_v5_codes(client: RawClient, unique_collection: str) -> None:
    uu = create(client, unique_collection, {"name": "a"})

    def create_code(uuid_bytes: bytes, collection: str, tags: dict) -> int:
        return stat_code(
            client.unary("Create", v5api.CreateParams(uuid=uuid_bytes, collection=collection, tags=kv(tags)))
        )

    assert create_code(uu, unique_collection + "x", {"name": "other"}) == StatusCode.SAME_STREAM
    assert create_code(uuidlib.uuid4().bytes, unique_collection, {"name": "a"}) == StatusCode.AMBIGUOUS_STREAM
    assert create_code(uuidlib.uuid4().bytes, unique_collection, {"unit": "V"}) == StatusCode.INVALID_TAG_KEY
    assert create_code(b"\x01" * 15, unique_collection, {"name": "b"}) == StatusCode.WRONG_ARGS
    assert stat_code(client.unary("Obliterate", v5api.ObliterateParams(uuid=uu))) == 0
    assert create_code(uu, unique_collection, {"name": "a"}) == StatusCode.REUSED_UUID


def test_lookup_streams_matches_brute_force(client: RawClient, unique_collection: str) -> None:
    specs = [
        ("a", {"name": "s1", "unit": "V"}, {"site": "n", "kind": "pmu"}),
        ("a", {"name": "s2", "unit": "A"}, {"site": "s"}),
        ("a/b", {"name": "s3", "unit": "V"}, {"kind": "pmu"}),
        ("ab", {"name": "s4"}, {}),
    ]
    streams = {}
    for sub, tags, annots in specs:
        collection = f"{unique_collection}/{sub}"
        streams[create(client, collection, tags, annots)] = (collection, tags, annots)

    def expected(collection: str, prefix: bool, tags: dict, annotations: dict) -> set[bytes]:
        def match(have: dict, want: dict) -> bool:
            return all(k in have and (v is None or have[k] == v) for k, v in want.items())

        return {
            u
            for u, (c, t, a) in streams.items()
            if (c.startswith(collection) if prefix else c == collection)
            and match(t, tags)
            and match(a, annotations)
        }

    queries = [
        (unique_collection + "/a", True, {}, {}),
        (unique_collection + "/a", False, {}, {}),
        (unique_collection, True, {"unit": "V"}, {}),
        (unique_collection, True, {"unit": None}, {}),
        (unique_collection, True, {}, {"kind": None}),
        (unique_collection, True, {}, {"kind": "pmu", "site": "n"}),
        (unique_collection, True, {"unit": "V"}, {"site": None}),
    ]
    for collection, prefix, tags, annots in queries:
        got = {d.uuid for d in lookup(client, collection, prefix, tags, annots)}
        assert got == expected(collection, prefix, tags, annots), (collection, prefix, tags, annots)


def test_list_collections_streams_prefix_matches(client: RawClient, unique_collection: str) -> None:
    names = [f"{unique_collection}/{suffix}" for suffix in ("x", "y", "y/z")]
    for name in names:
        create(client, name)
    replies = [
        v5api.ListCollectionsResponse.parse(p)
        for p in client.stream("ListCollections", v5api.ListCollectionsParams(prefix=unique_collection))
    ]
    assert all(r.stat is None for r in replies)
    got = [c for r in replies for c in r.collections]
    assert sorted(got) == sorted(names)
    nothing = client.stream(
        "ListCollections", v5api.ListCollectionsParams(prefix=unique_collection + "/nope")
    )
    assert len(nothing) == 1 and not v5api.ListCollectionsResponse.parse(nothing[0]).collections


def test_property_version_checks(client: RawClient, unique_collection: str) -> None:
    uu = create(client, unique_collection, {"name": "p"}, {"a": "1", "b": "2"})

    def annotate(expected: int, changes: dict, removals: list[str] = ()) -> int:
        return stat_code(
            client.unary(
                "SetStreamAnnotations",
                v5api.SetStreamAnnotationsParams(
                    uuid=uu, expected_property_version=expected, changes=kv(changes), removals=list(removals)
                ),
            )
        )

    assert annotate(1, {"a": "10"}, ["b"]) == 0
    assert annotate(1, {"a": "stale"}) == StatusCode.ANNOTATION_VERSION_MISMATCH
    assert annotate(0, {"c": "3"}) == 0  # 0 means "any version"
    tags_code = stat_code(
        client.unary(
            "SetStreamTags",
            v5api.SetStreamTagsParams(
                uuid=uu,
                expected_property_version=3,
                tags=kv({"unit": "W"}),
                collection=unique_collection + "/moved",
            ),
        )
    )
    assert tags_code == 0
    d = stream_info(client, uu).descriptor
    assert d.property_version == 4
    assert as_dict(d.annotations) == {"a": "10", "c": "3"}
    assert as_dict(d.tags) == {"name": "p", "unit": "W"}
    assert d.collection == unique_collection + "/moved"
    stale = stat_code(
        client.unary(
            "SetStreamTags",
            v5api.SetStreamTagsParams(uuid=uu, expected_property_version=3, tags=kv({"unit": "X"})),
        )
    )
    assert stale == StatusCode.ANNOTATION_VERSION_MISMATCH
    assert as_dict(stream_info(client, uu).descriptor.tags)["unit"] == "W"


def test_metadata_usage_counts_keys(client: RawClient, unique_collection: str) -> None:
    specs = [
        ({"name": "u1", "unit": "V"}, {"x": "1"}),
        ({"name": "u2"}, {"x": "2", "y": "3"}),
        ({"name": "u3"}, {}),
    ]
    for tags, annots in specs:
        create(client, unique_collection, tags, annots)
    reply = v5api.MetadataUsageResponse.parse(
        client.unary("GetMetadataUsage", v5api.MetadataUsageParams(prefix=unique_collection))
    )
    assert reply.stat is None
    want_tags: dict[str, int] = {}
    want_annotations: dict[str, int] = {}
    for tags, annots in specs:
        for k in tags:
            want_tags[k] = want_tags.get(k, 0) + 1
        for k in annots:
            want_annotations[k] = want_annotations.get(k, 0) + 1
    got_tags = {kc.key: kc.count for kc in reply.tags if kc.count}
    assert got_tags == want_tags
    assert {kc.key: kc.count for kc in reply.annotations if kc.count} == want_annotations


def test_obliterate_removes_stream_everywhere(client: RawClient, unique_collection: str) -> None:
    uu = create(client, unique_collection)
    assert stat_of(client.unary("Obliterate", v5api.ObliterateParams(uuid=uu))) is None
    assert stream_info(client, uu).stat.code == StatusCode.NO_SUCH_STREAM
    assert lookup(client, unique_collection, True) == []
    collections = [
        c
        for p in client.stream("ListCollections", v5api.ListCollectionsParams(prefix=unique_collection))
        for c in v5api.ListCollectionsResponse.parse(p).collections
    ]
    assert collections == []
    again = client.unary("Obliterate", v5api.ObliterateParams(uuid=uu))
    assert stat_code(again) == StatusCode.NO_SUCH_STREAM


def test_flush_and_fault_inject(client: RawClient, unique_collection: str) -> None:
    uu = create(client, unique_collection)
    flush = v5api.FlushResponse.parse(client.unary("Flush", v5api.FlushParams(uuid=uu)))
    assert flush.stat is None and flush.version_major == FIRST_VERSION
    fault = v5api.FaultInjectResponse.parse(client.unary("FaultInject", v5api.FaultInjectParams(type=1)))
    assert fault.stat.code == StatusCode.FAULT_INJECTION_DISABLED and "disabled" in fault.stat.msg


def test_sql_query_binds_parameters(client: RawClient, unique_collection: str) -> None:
    made = {create(client, unique_collection, {"name": f"q{i}"}) for i in range(3)}
    replies = [
        v5api.SqlQueryResponse.parse(p)
        for p in client.stream(
            "SQLQuery",
            v5api.SqlQueryParams(
                query="SELECT uuid, name FROM streams WHERE collection = $1", params=[unique_collection]
            ),
        )
    ]
    assert all(r.stat is None for r in replies)
    rows = [json.loads(row) for r in replies for row in r.sql_query_row]
    assert {uuidlib.UUID(str(row["uuid"])).bytes for row in rows} == made
    bad = [
        v5api.SqlQueryResponse.parse(p)
        for p in client.stream("SQLQuery", v5api.SqlQueryParams(query="DELETE FROM streams"))
    ]
    assert bad[-1].stat is not None and bad[-1].stat.code == StatusCode.BAD_SQL_VALUE
