"""Dicts in, platform messages out (and back): devices, units and retention.

Every check here runs before any RPC, so a misspelt key or a wrong type fails at once with an
error naming it, and nothing half-written reaches the server.
"""

from __future__ import annotations

import datetime as _dt
import math
import numbers
from collections.abc import Mapping
from typing import Any

from pingthings._proto.pingthings.platform import v1 as platform
from pingthings.timeseries.exceptions import InvalidArgumentError
from pingthings.wire.devices import DEVICE_FIELDS, DEVICE_TEXT_FIELDS, GEO_KEYS, MAX_LATITUDE, MAX_LONGITUDE

DEVICE_COLUMNS: tuple[str, ...] = DEVICE_FIELDS
"""The device table's columns, besides ``id`` (order of the returned dicts)."""

_DEVICE_STR = {"name", *DEVICE_TEXT_FIELDS}
_GEO_KEYS = GEO_KEYS
_GEO_ALIASES = {"logitude": "longitude", "lat": "latitude", "lon": "longitude", "lng": "longitude"}

UNIT_COLUMNS: tuple[str, ...] = ("name", "symbol", "canonical", "base", "source_name")
"""The unit table's columns, besides ``id`` (order of the returned dicts)."""

_INT64_MAX = (1 << 63) - 1


# ------------------------------------------------------------------------------------------ helpers
def check_id(value: Any, what: str) -> int:
    """An object id: a non-negative int (bool refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    value = int(value)
    if not 0 <= value <= _INT64_MAX:
        raise InvalidArgumentError(f"{what} must be a non-negative 64-bit integer, got {value}")
    return value


def _check_dict(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a dict, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise TypeError(f"{what} keys must be str, got {key!r}")
    return value


def _float(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number, got {type(value).__name__}")
    out = float(value)
    if not math.isfinite(out):
        raise InvalidArgumentError(f"{what} must be finite, got {out}")
    return out


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    return value


# ------------------------------------------------------------------------------------------- devices
def _geo_to_message(value: Any) -> platform.Geo:
    geo = _check_dict(value, "device geo")
    normalized: dict[str, Any] = {}
    for key, item in geo.items():
        name = _GEO_ALIASES.get(key, key)
        if name not in _GEO_KEYS:
            raise InvalidArgumentError(
                f"device geo has unknown key {key!r}; expected {{'latitude': float, 'longitude': float}}"
            )
        normalized[name] = item
    missing = [k for k in _GEO_KEYS if k not in normalized]
    if missing:
        raise InvalidArgumentError(f"device geo needs both latitude and longitude (missing {missing[0]!r})")
    lat = _float(normalized["latitude"], "device geo latitude")
    lon = _float(normalized["longitude"], "device geo longitude")
    if not -MAX_LATITUDE <= lat <= MAX_LATITUDE:
        raise InvalidArgumentError(f"device geo latitude must be within [-90, 90], got {lat}")
    if not -MAX_LONGITUDE <= lon <= MAX_LONGITUDE:
        raise InvalidArgumentError(f"device geo longitude must be within [-180, 180], got {lon}")
    return platform.Geo(latitude=lat, longitude=lon)


def device_to_message(device: Any, *, with_id: bool, require_name: bool) -> platform.Device:
    """Check a device dict and build the wire message.

    Parameters
    ----------
    device
        The user's dict. Keys are the device columns (plus ``id`` when ``with_id``); a value of
        None means "not given" except that ``name`` may never be None or empty when required.
    with_id
        True for updates: ``id`` is required and selects the row.
    require_name
        True when ``name`` must be present and non-empty (create, update with replace).
    """
    fields = _check_dict(device, "device")
    allowed = set(DEVICE_COLUMNS) | ({"id"} if with_id else set())
    unknown = sorted(set(fields) - allowed)
    if unknown:
        hint = " (the id is chosen by the server)" if unknown == ["id"] else ""
        raise InvalidArgumentError(
            f"device has unknown key(s) {', '.join(map(repr, unknown))}{hint}; allowed keys: "
            f"{', '.join(('id', *DEVICE_COLUMNS) if with_id else DEVICE_COLUMNS)}"
        )
    kwargs: dict[str, Any] = {}
    if with_id:
        if fields.get("id") is None:
            raise InvalidArgumentError("device['id'] is required to update a device")
        kwargs["id"] = check_id(fields["id"], "device['id']")
    name = fields.get("name")
    if "name" in fields and (name is None or (isinstance(name, str) and not name.strip())):
        raise InvalidArgumentError("device name must not be None or empty")
    if require_name and "name" not in fields:
        raise InvalidArgumentError("device needs a non-empty 'name'")
    for key in DEVICE_COLUMNS:
        value = fields.get(key)
        if value is None:
            continue
        if key in _DEVICE_STR:
            kwargs[key] = _str(value, f"device {key}")
        elif key == "geo":
            kwargs[key] = _geo_to_message(value)
        elif key == "elevation":
            kwargs[key] = _float(value, "device elevation")
        elif key == "alt_id":
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"device alt_id must be an int, got {type(value).__name__}")
            kwargs[key] = int(value)
        elif key == "enabled":
            if not isinstance(value, bool):
                raise TypeError(f"device enabled must be a bool, got {type(value).__name__}")
            kwargs[key] = value
    return platform.Device(**kwargs)


def device_to_dict(device: platform.Device | None) -> dict[str, Any]:
    """The dict returned to users: ``id`` then every column (None where unset)."""
    if device is None:
        raise InvalidArgumentError("the server returned no device")
    out: dict[str, Any] = {"id": device.id}
    for key in DEVICE_COLUMNS:
        value = getattr(device, key)
        if key == "geo" and value is not None:
            value = {"latitude": value.latitude, "longitude": value.longitude}
        out[key] = value
    return out


# --------------------------------------------------------------------------------------------- units
def _source_names(value: Any) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise TypeError(f"unit source_name must be a list of str, got {type(value).__name__}")
    return [_str(item, "each unit source_name entry") for item in value]


def _unit_value(key: str, value: Any) -> Any:
    if key == "base":
        return _float(value, "unit base")
    if key == "source_name":
        return _source_names(value)
    text = _str(value, f"unit {key}")
    if key == "name" and not text.strip():
        raise InvalidArgumentError("unit name must not be empty")
    return text


def new_unit_message(name: Any, symbol: Any, base: Any, canonical: Any, source_name: Any) -> platform.Unit:
    """Check the arguments of ``create_unit`` and build the wire message."""
    values = {
        "name": name,
        "symbol": symbol,
        "base": base,
        "canonical": canonical,
        "source_name": source_name,
    }
    for key, value in values.items():
        if value is None:
            raise InvalidArgumentError(f"create_unit needs {key} (got None)")
    return platform.Unit(**{key: _unit_value(key, value) for key, value in values.items()})


def unit_update_message(unit_dict: Any) -> platform.UpdateUnitParams:
    """Check an ``update_unit`` dict and build the request (with its field mask)."""
    fields = _check_dict(unit_dict, "unit_dict")
    unknown = sorted(set(fields) - {"id", *UNIT_COLUMNS})
    if unknown:
        raise InvalidArgumentError(
            f"unit_dict has unknown key(s) {', '.join(map(repr, unknown))}; allowed keys: "
            f"id, {', '.join(UNIT_COLUMNS)}"
        )
    if fields.get("id") is None:
        raise InvalidArgumentError("unit_dict['id'] is required to update a unit")
    kwargs: dict[str, Any] = {"id": check_id(fields["id"], "unit_dict['id']")}
    mask: list[str] = []
    for key in UNIT_COLUMNS:
        if key not in fields:
            continue
        if fields[key] is None:
            raise InvalidArgumentError(f"unit {key} cannot be set to None")
        kwargs[key] = _unit_value(key, fields[key])
        mask.append(key)
    return platform.UpdateUnitParams(unit=platform.Unit(**kwargs), fields=mask)


def unit_to_dict(unit: platform.Unit | None) -> dict[str, Any]:
    """The dict returned to users: id, name, symbol, canonical, base, source_name."""
    if unit is None:
        raise InvalidArgumentError("the server returned no unit")
    return {
        "id": unit.id,
        "name": unit.name,
        "symbol": unit.symbol,
        "canonical": unit.canonical,
        "base": unit.base,
        "source_name": list(unit.source_name),
    }


# ----------------------------------------------------------------------------------------- retention
def retention_ns(value: Any) -> int | None:
    """``remove_older_than`` as int nanoseconds (timedelta or int ns; None disables trimming)."""
    if value is None:
        return None
    if isinstance(value, _dt.timedelta):
        ns = (value.days * 86_400 + value.seconds) * 1_000_000_000 + value.microseconds * 1_000
    elif isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            "remove_older_than must be a datetime.timedelta or int nanoseconds (None disables "
            f"trimming), got {type(value).__name__}"
        )
    else:
        ns = int(value)
    if not 0 < ns <= _INT64_MAX:
        raise InvalidArgumentError(f"remove_older_than must be a positive duration, got {value!r}")
    return ns


def retention_message(override_per_stream: Any, remove_older_than: Any) -> platform.Retention:
    """Check the arguments of ``set_collection_retention`` and build the wire message."""
    if not isinstance(override_per_stream, bool):
        raise TypeError(f"override_per_stream must be a bool, got {type(override_per_stream).__name__}")
    return platform.Retention(
        remove_older_than_ns=retention_ns(remove_older_than), override_per_stream=override_per_stream
    )


def retention_to_dict(retention: platform.Retention | None) -> dict[str, Any]:
    """``{'remove_older_than': timedelta | None}`` as ``get_collection_properties`` shows it."""
    ns = retention.remove_older_than_ns if retention is not None else None
    return {"remove_older_than": None if ns is None else _dt.timedelta(microseconds=ns // 1_000)}
