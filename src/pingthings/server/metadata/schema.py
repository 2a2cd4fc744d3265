"""The SQLite schema of the metadata store and the units every new database starts with.

Tables are private to the store; the ``streams`` view is the public, documented face that
``sql_query`` exposes (column names and meaning follow the platform's stream table).
"""

from __future__ import annotations

import json
import sqlite3

#: Bumped when the layout changes; stored in ``PRAGMA user_version``.
SCHEMA_VERSION = 1

#: Columns of the public ``streams`` view, in order.
STREAMS_VIEW_COLUMNS: tuple[str, ...] = (
    "uuid",
    "collection",
    "name",
    "unit",
    "ingress",
    "property_version",
    "annotations",
    "distiller",
    "created_at",
    "updated_at",
    "geo",
    "last_written",
    "previous_last_written",
    "estimated_count_delta",
    "long_term_autoregressive_average",
    "count_last_updated",
    "previous_count_last_updated",
    "watched",
)

_UUID_TEXT = (
    "lower(substr(hex(uuid), 1, 8) || '-' || substr(hex(uuid), 9, 4) || '-' || substr(hex(uuid), 13, 4)"
    " || '-' || substr(hex(uuid), 17, 4) || '-' || substr(hex(uuid), 21))"
)

_DDL = f"""
CREATE TABLE stream_meta (
    uuid BLOB PRIMARY KEY,
    collection TEXT NOT NULL,
    name TEXT NOT NULL,
    tags TEXT NOT NULL,
    annotations TEXT NOT NULL,
    property_version INTEGER NOT NULL,
    hidden INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_written TEXT,
    previous_last_written TEXT,
    estimated_count_delta INTEGER NOT NULL DEFAULT 0,
    long_term_autoregressive_average REAL,
    count_last_updated TEXT,
    previous_count_last_updated TEXT,
    watched INTEGER NOT NULL DEFAULT 0,
    retention_set INTEGER NOT NULL DEFAULT 0,
    retention_ns INTEGER,
    retention_override INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX stream_meta_identity ON stream_meta (collection, name);
CREATE TABLE obliterated_streams (
    uuid BLOB PRIMARY KEY,
    obliterated_at TEXT NOT NULL
);
CREATE TABLE collection_retention (
    collection TEXT PRIMARY KEY,
    remove_older_than_ns INTEGER,
    override_per_stream INTEGER NOT NULL
);
CREATE TABLE devices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    device_type TEXT,
    description TEXT,
    latitude REAL,
    longitude REAL,
    elevation REAL,
    alt_id INTEGER,
    alt_name TEXT,
    enabled INTEGER NOT NULL DEFAULT 1,
    owner TEXT,
    protocol TEXT,
    model_name TEXT,
    vendor TEXT
);
CREATE TABLE units (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    symbol TEXT,
    base REAL,
    canonical TEXT,
    source_name TEXT NOT NULL DEFAULT '[]'
);
CREATE VIEW streams AS SELECT
    {_UUID_TEXT} AS uuid,
    collection AS collection,
    name AS name,
    coalesce(json_extract(tags, '$.unit'), '') AS unit,
    coalesce(json_extract(tags, '$.ingress'), '') AS ingress,
    property_version AS property_version,
    annotations AS annotations,
    coalesce(json_extract(tags, '$.distiller'), '') AS distiller,
    created_at AS created_at,
    updated_at AS updated_at,
    NULL AS geo,
    last_written AS last_written,
    previous_last_written AS previous_last_written,
    estimated_count_delta AS estimated_count_delta,
    long_term_autoregressive_average AS long_term_autoregressive_average,
    count_last_updated AS count_last_updated,
    previous_count_last_updated AS previous_count_last_updated,
    watched AS watched
FROM stream_meta;
"""

#: (name, symbol, base, canonical, source names) of the units a new database holds.
DEFAULT_UNITS: tuple[tuple[str, str, float, str, list[str]], ...] = (
    ("volts", "V", 1.0, "volts", ["VPHM", "voltage", "VOLTS", "VLTGE", "V"]),
    ("kilovolts", "kV", 1000.0, "volts", ["KV", "kv", "KILOVOLTS"]),
    ("amps", "A", 1.0, "amps", ["IPHM", "current", "AMPS", "AMPERES", "A"]),
    ("kiloamps", "kA", 1000.0, "amps", ["KA", "ka", "KILOAMPS"]),
    ("degrees", "deg", 1.0, "degrees", ["deg", "VPHA", "IPHA", "VpHA", "Deg", "DEG"]),
    ("radians", "rad", 57.29577951308232, "degrees", ["rad", "RAD", "RADIANS"]),
    ("hertz", "Hz", 1.0, "hertz", ["FREQ", "freq", "HZ", "Hz"]),
    ("hertz per second", "Hz/s", 1.0, "hertz per second", ["DFDT", "dfdt", "ROCOF"]),
    ("watts", "W", 1.0, "watts", ["W", "WATTS", "P"]),
    ("megawatts", "MW", 1.0e6, "watts", ["MW", "MEGAWATTS"]),
    ("vars", "var", 1.0, "vars", ["VAR", "VARS", "Q"]),
    ("megavars", "Mvar", 1.0e6, "vars", ["MVAR", "MEGAVARS"]),
    ("volt-amperes", "VA", 1.0, "volt-amperes", ["VA", "S"]),
    ("megavolt-amperes", "MVA", 1.0e6, "volt-amperes", ["MVA"]),
    ("power factor", "pf", 1.0, "power factor", ["PF", "pf"]),
    ("per unit", "pu", 1.0, "per unit", ["PU", "pu"]),
)


def create_schema(conn: sqlite3.Connection) -> None:
    """Create every table, index and view, and seed the default units.

    Runs once, inside the caller's transaction, on a database whose ``user_version`` is 0.
    """
    for statement in _DDL.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.executemany(
        "INSERT INTO units (name, symbol, base, canonical, source_name) VALUES (?, ?, ?, ?, ?)",
        [(name, sym, base, canon, json.dumps(src)) for name, sym, base, canon, src in DEFAULT_UNITS],
    )
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
