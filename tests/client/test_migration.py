"""The btrdb-python conveniences: collection_metadata, list_unique_*, strict is_collection_prefix."""

from __future__ import annotations

import uuid

import pytest

from pingthings.timeseries import AsyncClient, Client

pytestmark = pytest.mark.anyio


async def _populate(client: AsyncClient, collection: str) -> None:
    await client.create(
        uuid.uuid4(), f"{collection}/a_b", {"name": "Volts1", "unit": "V"}, {"site": "x", "k": "1"}
    )
    await client.create(uuid.uuid4(), f"{collection}/a_b", {"name": "Amps1", "unit": "A"}, {"site": "y"})
    await client.create(uuid.uuid4(), f"{collection}/axb", {"name": "Other", "unit": "Hz"}, {"phase": "a"})


async def test_unique_lists_and_usage(aclient: AsyncClient, unique_collection: str) -> None:
    await _populate(aclient, unique_collection)
    assert await aclient.list_unique_names(unique_collection) == ["Amps1", "Other", "Volts1"]
    assert await aclient.list_unique_units(unique_collection) == ["A", "Hz", "V"]
    assert await aclient.list_unique_annotations(unique_collection) == ["k", "phase", "site"]
    # "_" in a prefix is a character, not a LIKE wildcard: "a_b" does not match "axb".
    assert await aclient.list_unique_names(f"{unique_collection}/a_b") == ["Amps1", "Volts1"]
    assert "Volts1" in await aclient.list_unique_names()
    tags, annotations = await aclient.collection_metadata(unique_collection)
    assert tags["name"] == 3 and tags["unit"] == 3
    assert annotations == {"site": 2, "k": 1, "phase": 1}
    with pytest.raises(TypeError, match="collection must be a str"):
        await aclient.list_unique_units(3)  # type: ignore[arg-type]


async def test_is_collection_prefix_must_be_a_bool(aclient: AsyncClient, unique_collection: str) -> None:
    await _populate(aclient, unique_collection)
    found = await aclient.streams_in_collection(unique_collection, True)
    assert len(found) == 3
    with pytest.raises(TypeError, match="is_collection_prefix must be True or False, got str"):
        # btrdb-python takes several collections positionally; here the second lands in the flag.
        await aclient.streams_in_collection(unique_collection, f"{unique_collection}/axb")  # type: ignore[arg-type]


def test_sync_face(conn: Client, unique_collection: str) -> None:
    conn.get_event_loop().call(_populate, conn.get_async_client(), unique_collection)
    assert conn.list_unique_names(unique_collection) == ["Amps1", "Other", "Volts1"]
    assert conn.list_unique_units(unique_collection) == ["A", "Hz", "V"]
    assert conn.list_unique_annotations(unique_collection) == ["k", "phase", "site"]
    assert conn.collection_metadata(unique_collection)[1] == {"site": 2, "k": 1, "phase": 1}
    with pytest.raises(TypeError, match="is_collection_prefix"):
        conn.streams_in_collection(unique_collection, 1)  # type: ignore[arg-type]
    assert len(conn.streams_in_collection(unique_collection.upper(), True)) == 0  # lookups keep case
    ss = conn.streams_in_collection(unique_collection)
    assert [s.name for s in ss.filter(name="volts1")] == ["Volts1"]  # filter ignores case, as btrdb
