"""The device table: create, get, list, update (partial or replace) and delete.

A device is a dict with the keys of :data:`DEVICE_FIELDS` plus ``id``: ``geo`` is
``{"latitude": float, "longitude": float}`` or ``None``, ``enabled`` a bool (default True),
``elevation`` a float, ``alt_id`` an int, the rest text. ``name`` is required and non-empty
(MissingParameter, 443); two devices may not share both name and geo (AlreadyExists, 442);
unknown keys raise UnrecognizedParameter (444); an unknown id raises ObjectNotFound (445).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from pingthings.server.errors import AlreadyExists, ObjectNotFound, UnrecognizedParameter, WrongArgs
from pingthings.server.metadata.database import StoreCore
from pingthings.server.metadata.fields import (
    bool_or_none,
    float_or_none,
    int_or_none,
    object_id,
    required_name,
    text_or_none,
)
from pingthings.wire.devices import DEVICE_FIELDS, DEVICE_TEXT_FIELDS, GEO_KEYS, MAX_LATITUDE, MAX_LONGITUDE

# DEVICE_FIELDS (shared with the client through pingthings.wire.devices): the fields a caller may set
# on a device; ``id`` is assigned by the store.
_TEXT_FIELDS = DEVICE_TEXT_FIELDS
_COLUMNS = (
    "id, name, device_type, description, latitude, longitude, elevation, alt_id, alt_name, enabled,"
    " owner, protocol, model_name, vendor"
)
_Geo = tuple[float, float] | None


def _check_geo(value: Any) -> _Geo:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise WrongArgs("device field 'geo' must be a dict {'latitude': float, 'longitude': float} or None")
    extra = set(value) - set(GEO_KEYS)
    if extra:
        raise UnrecognizedParameter(
            f"device geo has unknown keys {sorted(extra)}; use latitude and longitude"
        )
    latitude = float_or_none("device", "geo.latitude", value.get("latitude"))
    longitude = float_or_none("device", "geo.longitude", value.get("longitude"))
    if latitude is None or longitude is None:
        raise WrongArgs("device geo needs both latitude and longitude")
    if not -MAX_LATITUDE <= latitude <= MAX_LATITUDE or not -MAX_LONGITUDE <= longitude <= MAX_LONGITUDE:
        raise WrongArgs(f"device geo ({latitude}, {longitude}) is outside latitude ±90, longitude ±180")
    return latitude, longitude


def _check_fields(device: Mapping[str, Any], *, allow_id: bool) -> dict[str, Any]:
    """Validate the given fields (only those present) and return them in column form."""
    if not isinstance(device, Mapping):
        raise WrongArgs("a device must be a dict of fields")
    allowed = set(DEVICE_FIELDS) | ({"id"} if allow_id else set())
    unknown = sorted(set(device) - allowed)
    if unknown:
        hint = "; 'id' is assigned by the server" if "id" in unknown else ""
        raise UnrecognizedParameter(
            f"unknown device field(s) {unknown}{hint}; known fields: {', '.join(DEVICE_FIELDS)}"
        )
    checked: dict[str, Any] = {}
    for field, value in device.items():
        if field == "id":
            continue
        if field == "name":
            checked[field] = required_name("device", value)
        elif field == "geo":
            checked[field] = _check_geo(value)
        elif field == "elevation":
            checked[field] = float_or_none("device", field, value)
        elif field == "alt_id":
            checked[field] = int_or_none("device", field, value)
        elif field == "enabled":
            checked[field] = bool_or_none("device", field, value)
        else:
            checked[field] = text_or_none("device", field, value)
    return checked


def _device(row: tuple) -> dict[str, Any]:
    (ident, name, device_type, description, lat, lon, elevation, alt_id, alt_name, enabled, owner, protocol,
     model_name, vendor) = row  # fmt: skip
    return {
        "id": ident,
        "name": name,
        "device_type": device_type,
        "description": description,
        "geo": None if lat is None else {"latitude": lat, "longitude": lon},
        "elevation": elevation,
        "alt_id": alt_id,
        "alt_name": alt_name,
        "enabled": bool(enabled),
        "owner": owner,
        "protocol": protocol,
        "model_name": model_name,
        "vendor": vendor,
    }


class DevicesMixin(StoreCore):
    """The device half of :class:`~pingthings.server.metadata.MetadataStore`."""

    def create_device(self, device: Mapping[str, Any]) -> dict[str, Any]:
        """Insert a device and return it with its new ``id`` (``enabled`` defaults to True)."""
        fields = _check_fields(device, allow_id=False)
        name = required_name("device", fields.get("name"))
        full = {field: fields.get(field) for field in DEVICE_FIELDS}
        full["name"] = name
        if full["enabled"] is None:
            full["enabled"] = True
        with self._write() as conn:
            self._check_device_unique(conn, name, full["geo"], None)
            cursor = conn.execute(
                f"INSERT INTO devices ({_COLUMNS.removeprefix('id, ')}) VALUES ({', '.join('?' * 13)})",
                self._row_values(full),
            )
            ident = cursor.lastrowid
        return self.get_device(int(ident or 0))

    @staticmethod
    def _row_values(full: Mapping[str, Any]) -> tuple[Any, ...]:
        geo = full["geo"]
        latitude, longitude = geo if geo is not None else (None, None)
        return (
            full["name"],
            full["device_type"],
            full["description"],
            latitude,
            longitude,
            full["elevation"],
            full["alt_id"],
            full["alt_name"],
            int(bool(full["enabled"])),
            full["owner"],
            full["protocol"],
            full["model_name"],
            full["vendor"],
        )

    @staticmethod
    def _check_device_unique(conn: sqlite3.Connection, name: str, geo: _Geo, ident: int | None) -> None:
        latitude, longitude = geo if geo is not None else (None, None)
        row = conn.execute(
            "SELECT id FROM devices WHERE name = ? AND latitude IS ? AND longitude IS ? AND id IS NOT ?",
            (name, latitude, longitude, ident),
        ).fetchone()
        if row is not None:
            raise AlreadyExists(
                f"device {row[0]} already has name {name!r} and the same geo; "
                "two devices can not share the same name and geo"
            )

    def get_device(self, device_id: int) -> dict[str, Any]:
        """The device with this id (ObjectNotFound, 445, if none)."""
        ident = object_id("device", device_id)
        with self._read() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM devices WHERE id = ?", (ident,)).fetchone()
        if row is None:
            raise ObjectNotFound(f"no device has id {ident}")
        return _device(row)

    def list_devices(self) -> list[dict[str, Any]]:
        """Every device, by id."""
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM devices ORDER BY id").fetchall()
        return [_device(row) for row in rows]

    def update_device(self, device: Mapping[str, Any], replace: bool = False) -> dict[str, Any]:
        """Change the device ``device["id"]`` and return it as stored.

        Without ``replace`` only the given fields change. With ``replace`` every field that is not
        given is cleared, except ``geo`` (kept) and ``enabled`` (True); ``name`` is then required.
        """
        fields = _check_fields(device, allow_id=True)
        ident = object_id("device", device.get("id"))
        with self._write() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM devices WHERE id = ?", (ident,)).fetchone()
            if row is None:
                raise ObjectNotFound(f"no device has id {ident}")
            current = _device(row)
            full: dict[str, Any]
            if replace:
                required_name("device", fields.get("name"))
                full = {field: fields.get(field) for field in DEVICE_FIELDS}
                if "geo" not in fields:
                    full["geo"] = current["geo"]
                if full["enabled"] is None:
                    full["enabled"] = True
            else:
                full = {field: current[field] for field in DEVICE_FIELDS}
                full.update(fields)
                if full["enabled"] is None:
                    full["enabled"] = True
            geo = full["geo"]
            if isinstance(geo, Mapping):
                full["geo"] = (geo["latitude"], geo["longitude"])
            self._check_device_unique(conn, full["name"], full["geo"], ident)
            assignments = ", ".join(f"{column.strip()} = ?" for column in _COLUMNS.split(",")[1:])
            conn.execute(f"UPDATE devices SET {assignments} WHERE id = ?", (*self._row_values(full), ident))
        return self.get_device(ident)

    def delete_device(self, device_id: int) -> None:
        """Remove a device (ObjectNotFound, 445, if none)."""
        ident = object_id("device", device_id)
        with self._write() as conn:
            if conn.execute("DELETE FROM devices WHERE id = ?", (ident,)).rowcount == 0:
                raise ObjectNotFound(f"no device has id {ident}")
