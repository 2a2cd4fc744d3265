"""The synchronous Client: every seed method, thread sharing, and the loop-thread guard."""

from __future__ import annotations

import concurrent.futures
import datetime
import pickle
import uuid as uuidlib

import pytest

import pingthings.timeseries as pt
from pingthings.timeseries import AsyncClient, Client, ClientEventLoop, Stream, StreamSet
from pingthings.timeseries.exceptions import (
    ClientClosedError,
    ObjectNotFoundError,
    StreamNotFoundError,
    SyncCallFromEventLoopError,
)


def test_accessors(conn: Client) -> None:
    assert isinstance(conn.get_async_client(), AsyncClient)
    assert isinstance(conn.get_event_loop(), ClientEventLoop)
    assert pt.connect is Client.connect


def test_clients_pickle_to_their_settings(conn: Client) -> None:
    copy = pickle.loads(pickle.dumps(conn))  # see test_pickling.py for worker processes
    try:
        assert copy is not conn and copy.info() == conn.info()
        assert copy.get_async_client().settings == conn.get_async_client().settings
    finally:
        copy.close()


def test_info(conn: Client) -> None:
    info = conn.info()
    assert info["major_version"] == 5
    assert info == conn.get_event_loop().call(conn.get_async_client().info)


def test_stream_methods_return_sync_wrappers(conn: Client, unique_collection: str) -> None:
    uu = uuidlib.uuid4()
    stream = conn.create(uu, unique_collection, {"name": "one"}, {"site": "a"})
    assert isinstance(stream, Stream) and stream.uuid == uu and stream.conn is conn
    assert stream.tags() == {"name": "one"} and stream.annotations() == {"site": "a"}
    other = conn.create(uuidlib.uuid4(), unique_collection, {"name": "two"})

    found = conn.streams_in_collection(unique_collection)
    assert isinstance(found, StreamSet)
    assert all(isinstance(s, Stream) for s in found)
    assert {s.uuid for s in found} == {uu, other.uuid}
    assert [s.name for s in conn.streams_in_collection(unique_collection, tags={"name": "two"})] == ["two"]

    by_uuid = conn.streamset_from_uuids([str(uu), other.uuid])
    assert isinstance(by_uuid, StreamSet) and [s.uuid for s in by_uuid] == [uu, other.uuid]
    assert [s.collection for s in by_uuid] == [unique_collection] * 2
    with pytest.raises(StreamNotFoundError):
        conn.streamset_from_uuids([uuidlib.uuid4()])

    handle = conn.stream_from_uuid(str(uu))
    assert isinstance(handle, Stream) and handle.uuid == uu
    with pytest.raises(TypeError):
        conn.stream_from_uuid("xyz")

    assert conn.list_collections(prefix=unique_collection) == [unique_collection]
    rows = conn.sql_query("select name from streams where collection = $1 order by name", [unique_collection])
    assert [row["name"] for row in rows] == ["one", "two"]


def test_platform_methods(conn: Client, unique_collection: str) -> None:
    unit = conn.create_unit(f"u-{unique_collection}", "U", 2.0, "volts", ["a", "b"])
    assert conn.get_unit(unit["id"]) == unit
    assert unit in conn.list_units()
    assert conn.update_unit({"id": unit["id"], "base": 3.0}) == {**unit, "base": 3.0}
    conn.delete_unit(unit["id"])
    with pytest.raises(ObjectNotFoundError):
        conn.get_unit(unit["id"])

    device = conn.create_device({"name": f"d-{unique_collection}", "vendor": "acme"})
    assert conn.get_device(device["id"]) == device
    assert device in conn.list_devices()
    assert conn.update_device({"id": device["id"], "owner": "me"}) == {**device, "owner": "me"}
    conn.delete_device(device["id"])
    with pytest.raises(ObjectNotFoundError):
        conn.get_device(device["id"])

    conn.set_collection_retention(unique_collection, False, datetime.timedelta(days=7))
    assert conn.get_collection_properties(unique_collection) == {
        "retention": {"remove_older_than": datetime.timedelta(days=7)}
    }


def test_64_threads_share_one_client(conn: Client, unique_collection: str) -> None:
    def work(i: int) -> tuple[int, uuidlib.UUID, list[str]]:
        info = conn.info()
        stream = conn.create(uuidlib.uuid4(), f"{unique_collection}/t{i:02d}", {"name": f"n{i}"})
        return info["major_version"], stream.uuid, conn.list_collections(f"{unique_collection}/t{i:02d}")

    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        results = list(pool.map(work, range(64)))
    assert [r[0] for r in results] == [5] * 64
    assert [r[2] for r in results] == [[f"{unique_collection}/t{i:02d}"] for i in range(64)]
    found = conn.streams_in_collection(unique_collection)
    assert {s.uuid for s in found} == {r[1] for r in results}


def test_sync_call_from_the_loop_is_refused(conn: Client) -> None:
    async def misuse() -> dict[str, object]:
        return conn.info()

    with pytest.raises(SyncCallFromEventLoopError, match="AsyncClient"):
        conn.get_event_loop().call(misuse)
    assert conn.info()["major_version"] == 5  # still usable


def test_concurrency_limit_overrides_environment(
    server_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PINGTHINGS_CONCURRENCY_LIMIT", "3")
    with Client.connect(endpoint=server_endpoint) as client:
        assert client.concurrency_limit == 3
        client.concurrency_limit = 9
        assert client.concurrency_limit == 9
        assert client.get_async_client().limiter.total_tokens == 9
    with Client.connect(endpoint=server_endpoint, concurrency_limit=5) as client:
        assert client.concurrency_limit == 5


def test_close_is_final(server_endpoint: str) -> None:
    client = Client.connect(endpoint=server_endpoint)
    with client:
        assert client.info()["major_version"] == 5
    client.close()  # idempotent
    with pytest.raises(ClientClosedError):
        client.info()
    assert client.get_async_client().closed
