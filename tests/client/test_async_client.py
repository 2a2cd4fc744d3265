"""Every AsyncClient method against the embedded server, on asyncio and trio."""

from __future__ import annotations

import uuid as uuidlib

import anyio
import pytest

from pingthings.timeseries import AsyncClient, AsyncStream, AsyncStreamSet
from pingthings.timeseries.exceptions import (
    AmbiguousStreamError,
    BadSQLValue,
    ClientClosedError,
    InvalidArgumentError,
    StreamExistsError,
    StreamNotFoundError,
)

pytestmark = pytest.mark.anyio


async def make_streams(
    client: AsyncClient, collection: str, names: list[str], **annotations: str
) -> list[AsyncStream]:
    out = []
    for name in names:
        out.append(
            await client.create(
                uuidlib.uuid4(), collection, {"name": name, "unit": "volts"}, dict(annotations)
            )
        )
    return out


async def test_info(aclient: AsyncClient) -> None:
    info = await aclient.info()
    assert set(info) == {"major_version", "minor_version", "build", "proxy"}
    assert info["major_version"] == 5
    assert isinstance(info["minor_version"], int) and isinstance(info["build"], str)
    assert set(info["proxy"]) == {"proxy_endpoints"}
    assert aclient.arrow_enabled == (info["minor_version"] >= 30)


async def test_create_returns_a_stream_with_metadata(aclient: AsyncClient, unique_collection: str) -> None:
    uu = uuidlib.uuid4()
    stream = await aclient.create(
        str(uu), unique_collection, {"name": "L1MAG", "unit": "volts"}, {"poc": "x", "n": 3}
    )
    assert isinstance(stream, AsyncStream)
    assert stream.uuid == uu
    assert stream.collection == unique_collection
    assert stream.tags() == {"name": "L1MAG", "unit": "volts"}
    assert stream.annotations() == {"poc": "x", "n": 3}
    assert stream.property_version == 1
    found = await aclient.streamset_from_uuids([uu])
    (fetched,) = list(found)
    assert (fetched.collection, fetched.tags(), fetched.annotations()) == (
        stream.collection,
        stream.tags(),
        stream.annotations(),
    )
    assert fetched.property_version == stream.property_version


async def test_create_conflicts(aclient: AsyncClient, unique_collection: str) -> None:
    (stream,) = await make_streams(aclient, unique_collection, ["a"])
    with pytest.raises(StreamExistsError):
        await aclient.create(stream.uuid, unique_collection + "/other", {"name": "b"})
    with pytest.raises(AmbiguousStreamError):
        await aclient.create(uuidlib.uuid4(), unique_collection, {"name": "a"})


async def test_create_checks_argument_types_before_calling(
    aclient: AsyncClient, unique_collection: str
) -> None:
    with pytest.raises(TypeError, match="not a valid UUID"):
        await aclient.create("not-a-uuid", unique_collection, {"name": "a"})
    with pytest.raises(TypeError, match="tags"):
        await aclient.create(uuidlib.uuid4(), unique_collection, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="collection"):
        await aclient.create(uuidlib.uuid4(), 42, {"name": "a"})  # type: ignore[arg-type]
    assert await aclient.list_collections(unique_collection) == []


async def test_stream_from_uuid_needs_no_round_trip(aclient: AsyncClient) -> None:
    uu = uuidlib.uuid4()
    stream = await aclient.stream_from_uuid(str(uu))
    assert isinstance(stream, AsyncStream) and stream.uuid == uu
    assert (await aclient.stream_from_uuid(uu)).uuid == uu
    with pytest.raises(TypeError):
        await aclient.stream_from_uuid("definitely not a uuid")
    with pytest.raises(TypeError):
        await aclient.stream_from_uuid(12345)  # type: ignore[arg-type]


async def test_streams_in_collection(aclient: AsyncClient, unique_collection: str) -> None:
    base = unique_collection
    top = await make_streams(aclient, base, ["a", "b"], region="west")
    sub = await make_streams(aclient, base + "/sub", ["c"], region="east")
    other = await make_streams(aclient, base + "x", ["d"])
    everything = {s.uuid: s for s in top + sub + other}

    def uuids(found: AsyncStreamSet) -> set[uuidlib.UUID]:
        return {s.uuid for s in found}

    found = await aclient.streams_in_collection(base)
    assert isinstance(found, AsyncStreamSet)
    assert uuids(found) == set(everything)  # a plain string prefix
    assert uuids(await aclient.streams_in_collection(base, is_collection_prefix=False)) == {
        s.uuid for s in top
    }
    assert uuids(await aclient.streams_in_collection(base, tags={"name": "c"})) == {sub[0].uuid}
    assert uuids(await aclient.streams_in_collection(base, annotations={"region": "west"})) == {
        s.uuid for s in top
    }
    # a None value matches any value of that key
    assert uuids(await aclient.streams_in_collection(base, annotations={"region": None})) == {
        s.uuid for s in top + sub
    }
    for stream in found:
        expected = everything[stream.uuid]
        assert (stream.collection, stream.tags(), stream.annotations()) == (
            expected.collection,
            expected.tags(),
            expected.annotations(),
        )


async def test_streamset_from_uuids(aclient: AsyncClient, unique_collection: str) -> None:
    streams = await make_streams(aclient, unique_collection, [f"s{i}" for i in range(12)])
    ids = [s.uuid for s in streams]
    found = await aclient.streamset_from_uuids([str(u) for u in ids])
    assert [s.uuid for s in found] == ids
    assert [s.name for s in found] == [s.name for s in streams]
    bare = await aclient.streamset_from_uuids([*ids, uuidlib.uuid4()], fetch_metadata=False)
    assert len(bare) == len(ids) + 1
    assert all(s.collection is None for s in bare)
    with pytest.raises(StreamNotFoundError):
        await aclient.streamset_from_uuids([*ids, uuidlib.uuid4()])
    with pytest.raises(TypeError):
        await aclient.streamset_from_uuids(["nope"])
    with pytest.raises(TypeError):
        await aclient.streamset_from_uuids(str(ids[0]))  # type: ignore[arg-type]


async def test_list_collections_prefix_example(aclient: AsyncClient, unique_collection: str) -> None:
    # The documented example: collections foo, bar, foo/baz, bar/baz (under a private root).
    root = unique_collection
    names = [f"{root}/{c}" for c in ("foo", "bar", "foo/baz", "bar/baz", "foobar")]
    for name in names:
        await make_streams(aclient, name, ["x"])
    listed = await aclient.list_collections(root)
    assert listed == sorted(names)
    everything = await aclient.list_collections()
    assert set(names) <= set(everything) and everything == sorted(everything)
    assert await aclient.list_collections(prefix=f"{root}/foo") == sorted(
        n for n in names if n.startswith(f"{root}/foo")
    )
    assert await aclient.list_collections(prefix=f"{root}/nothing") == []


async def test_sql_query_with_parameters(aclient: AsyncClient, unique_collection: str) -> None:
    streams = await make_streams(aclient, unique_collection, ["p", "q", "r"])
    rows = await aclient.sql_query(
        "select uuid, name, collection from streams where collection = $1 and name != $2",
        [unique_collection, "q"],
    )
    assert all(isinstance(row, dict) for row in rows)
    got = {(uuidlib.UUID(str(row["uuid"])), row["name"], row["collection"]) for row in rows}
    expected = {(s.uuid, s.name, s.collection) for s in streams if s.name != "q"}
    assert got == expected
    assert await aclient.sql_query("select name from streams where collection = $1", ["no such"]) == []
    with pytest.raises(BadSQLValue):
        await aclient.sql_query("this is not sql")
    with pytest.raises(TypeError):
        await aclient.sql_query("select 1", "not a list")  # type: ignore[arg-type]


async def test_concurrency_limit_property(aclient: AsyncClient) -> None:
    assert aclient.concurrency_limit == aclient.limiter.total_tokens >= 1
    aclient.concurrency_limit = 3
    assert aclient.concurrency_limit == 3 and aclient.limiter.total_tokens == 3
    with pytest.raises(InvalidArgumentError):
        aclient.concurrency_limit = 0


async def test_limiter_bounds_calls_in_flight(aclient: AsyncClient) -> None:
    aclient.concurrency_limit = 2
    peak = 0
    done = anyio.Event()

    async def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, aclient.limiter.borrowed_tokens)
            await anyio.sleep(0)

    async with anyio.create_task_group() as outer:
        outer.start_soon(watch)
        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(aclient.info)
        done.set()
    assert peak == 2  # the limit was reached and never exceeded
    assert aclient.limiter.borrowed_tokens == 0


async def test_closed_client_refuses_calls(server_endpoint: str, anyio_backend: str) -> None:
    client = await AsyncClient.connect(endpoint=server_endpoint)
    await client.info()
    await client.aclose()
    await client.close()  # idempotent
    with pytest.raises(ClientClosedError):
        await client.info()
