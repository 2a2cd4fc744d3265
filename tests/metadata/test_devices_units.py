"""Devices and units in the store: field checks, update semantics, identity rules, persistence."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from pingthings.server.errors import (
    AlreadyExists,
    MissingParameter,
    ObjectNotFound,
    UnrecognizedParameter,
    WrongArgs,
)
from pingthings.server.metadata import MetadataStore
from pingthings.server.metadata.devices import DEVICE_FIELDS
from pingthings.server.metadata.schema import DEFAULT_UNITS

FULL_DEVICE: dict[str, Any] = {
    "name": "relay-7",
    "device_type": "Relay",
    "description": "feeder 7 protection",
    "geo": {"latitude": -33.9, "longitude": 151.2},
    "elevation": 12.5,
    "alt_id": 4711,
    "alt_name": "R7",
    "enabled": False,
    "owner": "utility",
    "protocol": "C37.118",
    "model_name": "SEL-421",
    "vendor": "SEL",
}


def test_create_device_defaults_and_round_trip(store: MetadataStore) -> None:
    minimal = store.create_device({"name": "pmu"})
    assert minimal == {"id": minimal["id"], "name": "pmu", "enabled": True} | {
        field: None for field in DEVICE_FIELDS if field not in ("name", "enabled")
    }
    full = store.create_device(FULL_DEVICE)
    assert full == {"id": full["id"], **FULL_DEVICE}
    assert store.get_device(full["id"]) == full
    assert store.list_devices() == [minimal, full]


def test_device_identity_is_name_and_geo(store: MetadataStore) -> None:
    store.create_device({"name": "a"})
    with pytest.raises(AlreadyExists):
        store.create_device({"name": "a"})
    store.create_device({"name": "a", "geo": {"latitude": 1, "longitude": 2}})
    with pytest.raises(AlreadyExists):
        store.create_device({"name": "a", "geo": {"latitude": 1.0, "longitude": 2.0}})
    store.create_device({"name": "a", "geo": {"latitude": 1.0, "longitude": 2.5}})
    assert len(store.list_devices()) == 3


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({}, MissingParameter),
        ({"name": ""}, MissingParameter),
        ({"name": None}, MissingParameter),
        ({"name": "x", "colour": "red"}, UnrecognizedParameter),
        ({"name": "x", "id": 3}, UnrecognizedParameter),
        ({"name": 5}, WrongArgs),
        ({"name": "x", "elevation": "high"}, WrongArgs),
        ({"name": "x", "elevation": math.nan}, WrongArgs),
        ({"name": "x", "alt_id": 1.5}, WrongArgs),
        ({"name": "x", "alt_id": True}, WrongArgs),
        ({"name": "x", "alt_id": 1 << 64}, WrongArgs),
        ({"name": "x", "enabled": "yes"}, WrongArgs),
        ({"name": "x", "vendor": 3}, WrongArgs),
        ({"name": "x", "geo": [1, 2]}, WrongArgs),
        ({"name": "x", "geo": {"latitude": 1}}, WrongArgs),
        ({"name": "x", "geo": {"latitude": 91, "longitude": 0}}, WrongArgs),
        ({"name": "x", "geo": {"latitude": 1, "logitude": 0}}, UnrecognizedParameter),
    ],
)
def test_device_field_checks(store: MetadataStore, fields: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        store.create_device(fields)
    assert store.list_devices() == []


def test_update_device_partial_and_replace(store: MetadataStore) -> None:
    device = store.create_device(FULL_DEVICE)
    ident = device["id"]
    partial = store.update_device({"id": ident, "owner": "new owner", "alt_id": None})
    assert partial == device | {"owner": "new owner", "alt_id": None}
    with pytest.raises(MissingParameter):
        store.update_device({"id": ident, "name": ""})
    with pytest.raises(MissingParameter):
        store.update_device({"id": ident, "owner": "x"}, replace=True)
    replaced = store.update_device({"id": ident, "name": "relay-7b", "vendor": "ABB"}, replace=True)
    expected = {field: None for field in DEVICE_FIELDS} | {
        "id": ident,
        "name": "relay-7b",
        "vendor": "ABB",
        "enabled": True,
        "geo": FULL_DEVICE["geo"],
    }
    assert replaced == expected
    assert store.get_device(ident) == expected
    cleared_geo = store.update_device({"id": ident, "geo": None})
    assert cleared_geo["geo"] is None
    with pytest.raises(ObjectNotFound):
        store.update_device({"id": ident + 100, "name": "x"})
    with pytest.raises(MissingParameter):
        store.update_device({"name": "x"})


def test_update_device_cannot_collide(store: MetadataStore) -> None:
    first = store.create_device({"name": "a", "geo": {"latitude": 0.0, "longitude": 0.0}})
    second = store.create_device({"name": "b", "geo": {"latitude": 0.0, "longitude": 0.0}})
    with pytest.raises(AlreadyExists):
        store.update_device({"id": second["id"], "name": "a"})
    assert store.get_device(second["id"]) == second
    # updating a device without changing its identity does not collide with itself
    assert store.update_device({"id": first["id"], "name": "a"}) == first


def test_delete_device(store: MetadataStore) -> None:
    device = store.create_device({"name": "a"})
    store.delete_device(device["id"])
    with pytest.raises(ObjectNotFound):
        store.get_device(device["id"])
    with pytest.raises(ObjectNotFound):
        store.delete_device(device["id"])
    # ids are never reused, so a stale id cannot name a new device
    assert store.create_device({"name": "a"})["id"] != device["id"]


def test_default_units(store: MetadataStore) -> None:
    units = store.list_units()
    assert [(u["name"], u["symbol"], u["base"], u["canonical"], u["source_name"]) for u in units] == [
        (name, symbol, base, canonical, sources) for name, symbol, base, canonical, sources in DEFAULT_UNITS
    ]
    canonical_names = {u["name"] for u in units if u["base"] == 1.0}
    assert {u["canonical"] for u in units} <= canonical_names


def test_unit_lifecycle(store: MetadataStore) -> None:
    unit = store.create_unit(
        {"name": "millivolts", "symbol": "mV", "base": 0.001, "canonical": "volts", "source_name": ["MV"]}
    )
    assert store.get_unit(unit["id"]) == unit
    assert unit["source_name"] == ["MV"] and unit["base"] == 0.001
    updated = store.update_unit({"id": unit["id"], "name": "millivolt"})
    assert updated == unit | {"name": "millivolt"}
    updated = store.update_unit({"id": unit["id"], "source_name": ["mV", "MV"], "base": 1e-3})
    assert updated["source_name"] == ["mV", "MV"]
    assert store.update_unit({"id": unit["id"]}) == updated
    with pytest.raises(AlreadyExists):
        store.create_unit({"name": "volts"})
    with pytest.raises(AlreadyExists):
        store.update_unit({"id": unit["id"], "name": "volts"})
    with pytest.raises(MissingParameter):
        store.create_unit({"symbol": "x"})
    with pytest.raises(MissingParameter):
        store.update_unit({"id": unit["id"], "name": None})
    with pytest.raises(UnrecognizedParameter):
        store.create_unit({"name": "x", "colour": "red"})
    with pytest.raises(WrongArgs):
        store.create_unit({"name": "x", "source_name": "VOLTS"})
    with pytest.raises(WrongArgs):
        store.create_unit({"name": "x", "base": "one"})
    with pytest.raises(ObjectNotFound):
        store.update_unit({"id": 10**9, "name": "y"})
    assert store.get_unit(unit["id"]) == updated
    store.delete_unit(unit["id"])
    with pytest.raises(ObjectNotFound):
        store.delete_unit(unit["id"])
    assert len(store.list_units()) == len(DEFAULT_UNITS)


def test_devices_and_units_survive_reopening(db_path: Path) -> None:
    with MetadataStore(db_path) as meta:
        device = meta.create_device(FULL_DEVICE)
        unit = meta.create_unit({"name": "furlongs", "base": 201.168, "canonical": "metres"})
        meta.delete_unit(1)
        units = meta.list_units()
    with MetadataStore(db_path) as meta:
        assert meta.get_device(device["id"]) == device
        assert meta.get_unit(unit["id"]) == unit
        assert meta.list_units() == units  # defaults are seeded once, not on every open
