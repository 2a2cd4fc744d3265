"""Devices, units and collection retention through the client (the Platform service)."""

from __future__ import annotations

import datetime
import uuid as uuidlib
from pathlib import Path

import pytest

from pingthings.server import Server
from pingthings.timeseries import AsyncClient, Client
from pingthings.timeseries._platform_codec import DEVICE_COLUMNS
from pingthings.timeseries.exceptions import AlreadyExistsError, InvalidArgumentError, ObjectNotFoundError

VOLTS = {
    "name": "volts",
    "symbol": "V",
    "base": 1.0,
    "canonical": "volts",
    "source_name": ["VPHM", "voltage", "VOLTS", "VLTGE"],
}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuidlib.uuid4().hex[:10]}"


# ------------------------------------------------------------------------------------------- units
@pytest.mark.anyio
async def test_unit_examples(aclient: AsyncClient) -> None:
    definition = {**VOLTS, "name": unique("volts")}
    unit = await aclient.create_unit(**definition)
    # the documented output: id first, then the fields in this order
    assert list(unit) == ["id", "name", "symbol", "canonical", "base", "source_name"]
    assert isinstance(unit["id"], int)
    assert {k: v for k, v in unit.items() if k != "id"} == definition
    assert await aclient.get_unit(unit["id"]) == unit

    updated = await aclient.update_unit({"id": unit["id"], "name": definition["name"] + "-volt"})
    assert updated == {**unit, "name": definition["name"] + "-volt"}
    assert await aclient.get_unit(unit["id"]) == updated
    assert updated in await aclient.list_units()

    await aclient.delete_unit(unit["id"])
    with pytest.raises(ObjectNotFoundError):
        await aclient.get_unit(unit["id"])
    assert unit["id"] not in {u["id"] for u in await aclient.list_units()}


@pytest.mark.anyio
async def test_unit_rules(aclient: AsyncClient) -> None:
    unit = await aclient.create_unit(unique("amps"), "A", 1.0, "amps", [])
    with pytest.raises(InvalidArgumentError, match="symbl"):
        await aclient.update_unit({"id": unit["id"], "symbl": "x"})
    with pytest.raises(InvalidArgumentError, match="id"):
        await aclient.update_unit({"name": "no id"})
    with pytest.raises(TypeError):
        await aclient.update_unit({"id": unit["id"], "source_name": "not a list"})
    with pytest.raises(InvalidArgumentError):
        await aclient.create_unit(None, "A", 1.0, "amps", [])  # type: ignore[arg-type]
    assert await aclient.get_unit(unit["id"]) == unit  # nothing changed
    missing = max(u["id"] for u in await aclient.list_units()) + 1000
    with pytest.raises(ObjectNotFoundError):
        await aclient.get_unit(missing)
    with pytest.raises(ObjectNotFoundError):
        await aclient.update_unit({"id": missing, "name": "x"})
    with pytest.raises(TypeError):
        await aclient.get_unit("1")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- devices
@pytest.mark.anyio
async def test_device_create_get_list(aclient: AsyncClient) -> None:
    name = unique("pmu")
    device = await aclient.create_device(
        {"name": name, "geo": {"latitude": 35.1, "longitude": -106.6}, "alt_id": 7}
    )
    assert list(device) == ["id", *DEVICE_COLUMNS]
    assert isinstance(device["id"], int)
    assert device["enabled"] is True  # the default
    assert device["geo"] == {"latitude": 35.1, "longitude": -106.6}
    assert (device["name"], device["alt_id"], device["vendor"]) == (name, 7, None)
    assert await aclient.get_device(device["id"]) == device
    assert device in await aclient.list_devices()


@pytest.mark.anyio
async def test_device_name_rules(aclient: AsyncClient) -> None:
    before = await aclient.list_devices()
    for bad in ({"name": None}, {"name": ""}, {"vendor": "no name"}):
        with pytest.raises(InvalidArgumentError, match="name"):
            await aclient.create_device(bad)
    with pytest.raises(InvalidArgumentError, match="colour"):
        await aclient.create_device({"name": unique("d"), "colour": "red"})
    with pytest.raises(TypeError, match="enabled"):
        await aclient.create_device({"name": unique("d"), "enabled": "yes"})
    with pytest.raises(InvalidArgumentError, match="longitude"):
        await aclient.create_device({"name": unique("d"), "geo": {"latitude": 1.0}})
    assert await aclient.list_devices() == before  # nothing reached the server


@pytest.mark.anyio
async def test_device_name_and_geo_unique(aclient: AsyncClient) -> None:
    name = unique("relay")
    geo = {"latitude": 10.0, "longitude": 20.0}
    first = await aclient.create_device({"name": name, "geo": geo})
    with pytest.raises(AlreadyExistsError):
        await aclient.create_device({"name": name, "geo": dict(geo)})
    elsewhere = await aclient.create_device({"name": name, "geo": {"latitude": 10.5, "longitude": 20.0}})
    assert elsewhere["id"] != first["id"]
    with pytest.raises(AlreadyExistsError):  # moving onto the first one's place collides too
        await aclient.update_device({"id": elsewhere["id"], "geo": geo})


@pytest.mark.anyio
async def test_device_update_and_replace(aclient: AsyncClient) -> None:
    full = {
        "name": unique("dfr"),
        "device_type": "DFR",
        "description": "feeder 7",
        "geo": {"latitude": -33.9, "longitude": 18.4},
        "elevation": 12.5,
        "alt_id": 3,
        "alt_name": "F7",
        "enabled": False,
        "owner": "ops",
        "protocol": "C37.118",
        "model_name": "X1",
        "vendor": "acme",
    }
    device = await aclient.create_device(full)
    assert device == {"id": device["id"], **full}

    partial = await aclient.update_device({"id": device["id"], "owner": "planning", "elevation": 13})
    assert partial == {**device, "owner": "planning", "elevation": 13.0}

    replaced = await aclient.update_device(
        {"id": device["id"], "name": full["name"], "vendor": "other"}, replace=True
    )
    expected = {key: None for key in DEVICE_COLUMNS} | {
        "id": device["id"],
        "name": full["name"],
        "vendor": "other",
        "enabled": True,  # default again
        "geo": full["geo"],  # geo is kept even by replace
    }
    assert replaced == expected
    assert await aclient.get_device(device["id"]) == expected

    with pytest.raises(InvalidArgumentError, match="name"):
        await aclient.update_device({"id": device["id"], "vendor": "x"}, replace=True)
    with pytest.raises(InvalidArgumentError, match="name"):
        await aclient.update_device({"id": device["id"], "name": ""})
    with pytest.raises(InvalidArgumentError, match="id"):
        await aclient.update_device({"name": "x"})
    with pytest.raises(InvalidArgumentError, match="flavour"):
        await aclient.update_device({"id": device["id"], "flavour": "x"})
    assert await aclient.get_device(device["id"]) == expected


@pytest.mark.anyio
async def test_unknown_device_ids(aclient: AsyncClient) -> None:
    device = await aclient.create_device({"name": unique("gone")})
    await aclient.delete_device(device["id"])
    with pytest.raises(ObjectNotFoundError):
        await aclient.get_device(device["id"])
    with pytest.raises(ObjectNotFoundError):
        await aclient.update_device({"id": device["id"], "owner": "x"})
    with pytest.raises(ObjectNotFoundError):
        await aclient.delete_device(device["id"])


# --------------------------------------------------------------------------------------- retention
@pytest.mark.anyio
async def test_retention_round_trip(aclient: AsyncClient, unique_collection: str) -> None:
    with pytest.raises(ObjectNotFoundError):  # no streams and no properties: no such collection
        await aclient.get_collection_properties(unique_collection)
    await aclient.create(uuidlib.uuid4(), unique_collection, {"name": "s"})
    assert await aclient.get_collection_properties(unique_collection) == {
        "retention": {"remove_older_than": None}
    }
    await aclient.set_collection_retention(unique_collection, False, datetime.timedelta(days=7))
    assert await aclient.get_collection_properties(unique_collection) == {
        "retention": {"remove_older_than": datetime.timedelta(days=7)}
    }
    span = datetime.timedelta(hours=5, seconds=3, microseconds=250)
    ns = (span.days * 86400 + span.seconds) * 10**9 + span.microseconds * 1000
    await aclient.set_collection_retention(unique_collection, override_per_stream=True, remove_older_than=ns)
    assert (await aclient.get_collection_properties(unique_collection))["retention"][
        "remove_older_than"
    ] == span
    await aclient.set_collection_retention(unique_collection)  # None disables trimming
    assert await aclient.get_collection_properties(unique_collection) == {
        "retention": {"remove_older_than": None}
    }


@pytest.mark.anyio
async def test_retention_arguments_checked(aclient: AsyncClient, unique_collection: str) -> None:
    with pytest.raises(TypeError, match="timedelta"):
        await aclient.set_collection_retention(unique_collection, False, "7 days")
    with pytest.raises(TypeError, match="timedelta"):
        await aclient.set_collection_retention(unique_collection, False, datetime.datetime.now())
    with pytest.raises(InvalidArgumentError, match="positive"):
        await aclient.set_collection_retention(unique_collection, False, datetime.timedelta(days=-1))
    with pytest.raises(TypeError, match="override_per_stream"):
        await aclient.set_collection_retention(unique_collection, "no", None)  # type: ignore[arg-type]
    with pytest.raises(ObjectNotFoundError):  # nothing reached the server
        await aclient.get_collection_properties(unique_collection)


# ---------------------------------------------------------------------------------------- restart
def test_platform_metadata_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Server(data, listen="127.0.0.1:0") as server, Client.connect(endpoint=server.endpoint) as conn:
        unit = conn.create_unit(**{**VOLTS, "name": "volts-restart"})
        device = conn.create_device(
            {"name": "pmu-1", "geo": {"latitude": 1.5, "longitude": 2.5}, "owner": "o"}
        )
        conn.set_collection_retention("site/a", True, datetime.timedelta(days=30))
        units, devices = conn.list_units(), conn.list_devices()
    with Server(data, listen="127.0.0.1:0") as server, Client.connect(endpoint=server.endpoint) as conn:
        assert conn.get_unit(unit["id"]) == unit
        assert conn.get_device(device["id"]) == device
        assert conn.list_units() == units
        assert conn.list_devices() == devices
        assert conn.get_collection_properties("site/a") == {
            "retention": {"remove_older_than": datetime.timedelta(days=30)}
        }
