"""The unit table: create, get, list, update (partial) and delete.

A unit is a dict ``{"id", "name", "symbol", "base", "canonical", "source_name"}``: ``base`` is
the factor that converts the unit to its ``canonical`` unit, ``source_name`` the other names the
unit goes by. ``name`` is required, non-empty (MissingParameter, 443) and unique (AlreadyExists,
442). Unknown keys raise UnrecognizedParameter (444); an unknown id ObjectNotFound (445). A new
database starts with the units of :data:`~pingthings.server.metadata.schema.DEFAULT_UNITS`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from pingthings.server.errors import AlreadyExists, ObjectNotFound, UnrecognizedParameter, WrongArgs
from pingthings.server.metadata.database import StoreCore
from pingthings.server.metadata.fields import float_or_none, object_id, required_name, text_or_none

#: Fields a caller may set on a unit (``id`` is assigned by the store).
UNIT_FIELDS: tuple[str, ...] = ("name", "symbol", "base", "canonical", "source_name")
_COLUMNS = "id, name, symbol, base, canonical, source_name"


def _check_source_names(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not all(isinstance(item, str) for item in value):
        raise WrongArgs("unit field 'source_name' must be a list of strings")
    return list(value)


def _check_fields(unit: Mapping[str, Any], *, allow_id: bool) -> dict[str, Any]:
    if not isinstance(unit, Mapping):
        raise WrongArgs("a unit must be a dict of fields")
    allowed = set(UNIT_FIELDS) | ({"id"} if allow_id else set())
    unknown = sorted(set(unit) - allowed)
    if unknown:
        hint = "; 'id' is assigned by the server" if "id" in unknown else ""
        raise UnrecognizedParameter(
            f"unknown unit field(s) {unknown}{hint}; known fields: {', '.join(UNIT_FIELDS)}"
        )
    checked: dict[str, Any] = {}
    for field, value in unit.items():
        if field == "id":
            continue
        if field == "name":
            checked[field] = required_name("unit", value)
        elif field == "base":
            checked[field] = float_or_none("unit", field, value)
        elif field == "source_name":
            checked[field] = _check_source_names(value)
        else:
            checked[field] = text_or_none("unit", field, value)
    return checked


def _unit(row: tuple) -> dict[str, Any]:
    ident, name, symbol, base, canonical, source_name = row
    return {
        "id": ident,
        "name": name,
        "symbol": symbol,
        "base": base,
        "canonical": canonical,
        "source_name": json.loads(source_name),
    }


class UnitsMixin(StoreCore):
    """The unit half of :class:`~pingthings.server.metadata.MetadataStore`."""

    def create_unit(self, unit: Mapping[str, Any]) -> dict[str, Any]:
        """Insert a unit and return it with its new ``id``."""
        fields = _check_fields(unit, allow_id=False)
        name = required_name("unit", fields.get("name"))
        with self._write() as conn:
            self._check_unit_unique(conn, name, None)
            cursor = conn.execute(
                "INSERT INTO units (name, symbol, base, canonical, source_name) VALUES (?, ?, ?, ?, ?)",
                (
                    name,
                    fields.get("symbol"),
                    fields.get("base"),
                    fields.get("canonical"),
                    json.dumps(fields.get("source_name") or []),
                ),
            )
            ident = int(cursor.lastrowid or 0)
        return self.get_unit(ident)

    @staticmethod
    def _check_unit_unique(conn: sqlite3.Connection, name: str, ident: int | None) -> None:
        row = conn.execute("SELECT id FROM units WHERE name = ? AND id IS NOT ?", (name, ident)).fetchone()
        if row is not None:
            raise AlreadyExists(f"unit {row[0]} is already named {name!r}")

    def get_unit(self, unit_id: int) -> dict[str, Any]:
        """The unit with this id (ObjectNotFound, 445, if none)."""
        ident = object_id("unit", unit_id)
        with self._read() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM units WHERE id = ?", (ident,)).fetchone()
        if row is None:
            raise ObjectNotFound(f"no unit has id {ident}")
        return _unit(row)

    def list_units(self) -> list[dict[str, Any]]:
        """Every unit, by id."""
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM units ORDER BY id").fetchall()
        return [_unit(row) for row in rows]

    def update_unit(self, unit: Mapping[str, Any]) -> dict[str, Any]:
        """Change the given fields of unit ``unit["id"]`` and return it as stored."""
        fields = _check_fields(unit, allow_id=True)
        ident = object_id("unit", unit.get("id"))
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM units WHERE id = ?", (ident,)).fetchone() is None:
                raise ObjectNotFound(f"no unit has id {ident}")
            if "name" in fields:
                self._check_unit_unique(conn, fields["name"], ident)
            if fields:
                if "source_name" in fields:
                    fields["source_name"] = json.dumps(fields["source_name"])
                assignments = ", ".join(f"{field} = ?" for field in fields)
                conn.execute(f"UPDATE units SET {assignments} WHERE id = ?", (*fields.values(), ident))
        return self.get_unit(ident)

    def delete_unit(self, unit_id: int) -> None:
        """Remove a unit (ObjectNotFound, 445, if none)."""
        ident = object_id("unit", unit_id)
        with self._write() as conn:
            if conn.execute("DELETE FROM units WHERE id = ?", (ident,)).rowcount == 0:
                raise ObjectNotFound(f"no unit has id {ident}")
