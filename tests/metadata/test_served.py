"""The metadata features through the whole embedded server: the official btrdb client's SQL
helpers, and the Platform service registered next to v5api.BTrDB on the same port."""

from __future__ import annotations

import uuid as uuidlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import grpclib.client
import pytest

from pingthings._proto.pingthings.platform.v1 import (
    GetCollectionPropertiesParams,
    ListUnitsParams,
    PlatformStub,
    Retention,
    SetCollectionRetentionParams,
)
from pingthings.server import Server
from pingthings.server.metadata.schema import DEFAULT_UNITS

btrdb = pytest.importorskip("btrdb")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with Server(tmp_path / "data", listen="127.0.0.1:0") as srv:
        yield srv


def test_official_client_sql_helpers(server: Server) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conn = btrdb.connect(server.endpoint)
    streams = [
        ("sun/pmu1", {"name": "L1MAG", "unit": "volts"}, {"poc": "alice"}),
        ("sun/pmu1", {"name": "L1ANG", "unit": "degrees"}, {"impedance": "3"}),
        ("moon/pmu", {"name": "F", "unit": "hertz"}, {"region": "far"}),
    ]
    for collection, tags, notes in streams:
        conn.create(uuidlib.uuid4(), collection, tags=tags, annotations=notes)
    in_sun = [s for s in streams if s[0].startswith("sun")]
    assert sorted(conn.list_unique_names("sun")) == sorted(t["name"] for _, t, _ in in_sun)
    assert sorted(conn.list_unique_units("sun")) == sorted(t["unit"] for _, t, _ in in_sun)
    assert sorted(conn.list_unique_annotations("sun")) == sorted(k for _, _, a in in_sun for k in a)
    counted = conn.query(
        "SELECT COUNT(uuid) FROM streams WHERE annotations->$1::text IS NOT NULL", params=["poc"]
    )
    assert counted == [{"count": 1}]
    (row,) = conn.query("select uuid, annotations from streams where name = $1", ["F"])
    assert row["annotations"] == {"region": "far"}
    assert conn.stream_from_uuid(row["uuid"]).name == "F"
    with pytest.raises(btrdb.exceptions.BTrDBError, match="SELECT"):
        conn.query("delete from streams")
    assert len(conn.query("select uuid from streams")) == len(streams)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the generated stub runs on grpclib, which is asyncio-only


@pytest.mark.anyio
async def test_platform_service_is_served(server: Server) -> None:
    host, port = server.endpoint.rsplit(":", 1)
    channel = grpclib.client.Channel(host, int(port))
    try:
        stub = PlatformStub(channel)
        units = await stub.list_units(ListUnitsParams())
        assert [u.name for u in units.units] == [u[0] for u in DEFAULT_UNITS]
        await stub.set_collection_retention(
            SetCollectionRetentionParams(
                "c", Retention(remove_older_than_ns=10**12, override_per_stream=True)
            )
        )
        props = await stub.get_collection_properties(GetCollectionPropertiesParams("c"))
        assert props.stat is None
        assert props.retention is not None and props.retention.remove_older_than_ns == 10**12
    finally:
        channel.close()
