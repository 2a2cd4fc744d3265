"""The read-only SQL sandbox behind ``sql_query``.

Queries run on their own connection, opened read-only (``mode=ro``, ``query_only``), with a
SQLite authorizer that permits nothing but SELECT, reads of the documented ``streams`` view
columns, the JSON table functions and a list of pure built-in functions. Writes, DDL, PRAGMA,
ATTACH, other tables, several statements and the store's private table names are refused with
BadSQL (441). A progress handler stops runaway queries, and text values are capped in size.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pingthings.server.errors import BadSQL
from pingthings.server.metadata.schema import STREAMS_VIEW_COLUMNS
from pingthings.server.metadata.sql_rewrite import ARROW_FUNCTION, NATIVE_JSON_ARROWS, rewrite

#: Tables of the store that a query may never name (the view reads them on its own behalf).
PRIVATE_NAMES = frozenset(
    {"stream_meta", "obliterated_streams", "collection_retention", "devices", "units", "sqlite_sequence"}
)
#: Columns of the private table that the ``streams`` view itself reads.
_VIEW_SOURCE_COLUMNS = frozenset(
    {
        "uuid",
        "collection",
        "name",
        "tags",
        "property_version",
        "annotations",
        "created_at",
        "updated_at",
        "last_written",
        "previous_last_written",
        "estimated_count_delta",
        "long_term_autoregressive_average",
        "count_last_updated",
        "previous_count_last_updated",
        "watched",
        "hidden",
    }
)
_STREAMS_COLUMNS = frozenset(STREAMS_VIEW_COLUMNS)
_JSON_TABLES = frozenset({"json_each", "json_tree"})
#: Pure built-in functions a query may call (aggregate, window, text, date and JSON functions).
ALLOWED_FUNCTIONS = frozenset(
    [
        "abs",
        "avg",
        "char",
        "coalesce",
        "count",
        "cume_dist",
        "date",
        "datetime",
        "dense_rank",
        "first_value",
        "format",
        "glob",
        "group_concat",
        "hex",
        "ifnull",
        "iif",
        "instr",
        "julianday",
        "lag",
        "last_value",
        "lead",
        "length",
        "like",
        "likelihood",
        "likely",
        "lower",
        "ltrim",
        "max",
        "min",
        "nth_value",
        "ntile",
        "nullif",
        "percent_rank",
        "printf",
        "quote",
        "rank",
        "replace",
        "round",
        "row_number",
        "rtrim",
        "sign",
        "strftime",
        "substr",
        "substring",
        "sum",
        "time",
        "total",
        "trim",
        "typeof",
        "unicode",
        "unixepoch",
        "unlikely",
        "upper",
        "->",
        "->>",
        "json",
        "json_array",
        "json_array_length",
        "json_extract",
        "json_group_array",
        "json_group_object",
        "json_insert",
        "json_object",
        "json_patch",
        "json_quote",
        "json_remove",
        "json_replace",
        "json_set",
        "json_type",
        "json_valid",
        "exist",
        "defined",
        ARROW_FUNCTION,
    ]
)
#: Longest text or blob a query may build, in bytes.
MAX_VALUE_BYTES = 10_000_000
#: Most rows one query may return.
MAX_ROWS = 1_000_000
#: Wall-clock budget of one query, in seconds.
QUERY_SECONDS = 10.0

_FUNCTION_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\(.*\)$", re.DOTALL)
_PARENTHESISED = re.compile(r"^\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)$")


def _hstore_get(annotations: str | None, key: str | int | float | None) -> str | None:
    """``annotations ->> key`` for SQLite builds older than 3.38 (text value or NULL)."""
    if annotations is None or key is None:
        return None
    try:
        value = json.loads(annotations).get(str(key))
    except (ValueError, TypeError, AttributeError):
        return None
    return value if value is None or isinstance(value, str) else json.dumps(value)


def _hstore_exist(annotations: str | None, key: str | None) -> bool | None:
    """PostgreSQL's ``exist(hstore, key)``: does the annotation map have ``key``."""
    if annotations is None or key is None:
        return None
    try:
        return key in json.loads(annotations)
    except (ValueError, TypeError):
        return False


def _hstore_defined(annotations: str | None, key: str | None) -> bool | None:
    """PostgreSQL's ``defined(hstore, key)``: is ``key`` present with a non-NULL value."""
    if annotations is None or key is None:
        return None
    try:
        return json.loads(annotations).get(key) is not None
    except (ValueError, TypeError, AttributeError):
        return False


class _Reader:
    """One read-only connection and the deadline its progress handler checks."""

    def __init__(self, conn: sqlite3.Connection, include_hidden: bool) -> None:
        self.conn = conn
        self.include_hidden = include_hidden
        self.deadline = 0.0

    def over_time(self) -> int:
        return 1 if time.monotonic() > self.deadline else 0


def _visible_streams_view(conn: sqlite3.Connection) -> str:
    """DDL of a connection-private ``streams`` view: the stored one without hidden streams.

    A TEMP view shadows the stored view of the same name for every unqualified ``streams`` in a
    query; the sandbox's authorizer refuses ``main.streams`` on such a connection.
    """
    row = conn.execute(
        "SELECT sql FROM main.sqlite_master WHERE type = 'view' AND name = 'streams'"
    ).fetchone()
    stored = " ".join(str(row[0]).split()) if row else ""
    head = "CREATE VIEW streams AS "
    if not stored.startswith(head) or not stored.endswith(" FROM stream_meta"):
        raise RuntimeError("the metadata database's streams view is not the one this server defines")
    return "CREATE TEMP VIEW streams AS " + stored[len(head) :] + " WHERE hidden = 0"


class SqlSandbox:
    """Runs read-only metadata queries against the store's database file.

    Queries from different threads run in parallel, each on a read-only connection taken from a
    small pool (one per concurrently querying thread), so a slow query does not hold up others.

    Parameters
    ----------
    path
        The store's database file (it must already exist).
    native_arrows
        Use SQLite's own ``->>`` (3.38+); otherwise the ``hstore_get`` fallback.
    query_seconds
        Wall-clock budget of one query (None: :data:`QUERY_SECONDS`).
    """

    def __init__(
        self, path: Path, native_arrows: bool = NATIVE_JSON_ARROWS, query_seconds: float | None = None
    ) -> None:
        self._path = Path(path).resolve()
        self._query_seconds = query_seconds
        self._native_arrows = native_arrows
        self._lock = threading.Lock()
        self._idle: dict[bool, list[_Reader]] = {True: [], False: []}
        self._busy: set[_Reader] = set()
        self._closed = False

    def close(self) -> None:
        """Close the idle connections; busy ones close when their query ends."""
        with self._lock:
            self._closed = True
            idle = self._idle[True] + self._idle[False]
            self._idle = {True: [], False: []}
        for reader in idle:
            reader.conn.close()
        self.interrupt()

    def interrupt(self) -> None:
        """Stop every query running now (each fails with BadSQL); later queries run normally."""
        with self._lock:
            busy = list(self._busy)
        for reader in busy:
            reader.conn.interrupt()

    def _take(self, include_hidden: bool) -> _Reader:
        with self._lock:
            if self._idle[include_hidden]:
                reader = self._idle[include_hidden].pop()
                self._busy.add(reader)
                return reader
        reader = self._connect(include_hidden)
        with self._lock:
            self._busy.add(reader)
        return reader

    def _give_back(self, reader: _Reader) -> None:
        with self._lock:
            self._busy.discard(reader)
            if not self._closed:
                self._idle[reader.include_hidden].append(reader)
                return
        reader.conn.close()

    def _connect(self, include_hidden: bool) -> _Reader:
        conn = sqlite3.connect(
            f"{self._path.as_uri()}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
        )
        if not include_hidden:
            conn.execute(_visible_streams_view(conn))
        conn.execute("PRAGMA query_only = ON")
        conn.execute("PRAGMA case_sensitive_like = ON")  # LIKE is case-sensitive in PostgreSQL
        # Table-valued JSON functions register themselves on first use; do it before the
        # authorizer exists so that registration is not mistaken for a write.
        conn.execute("SELECT count(*) FROM json_each('[]'), json_tree('[]')").fetchall()
        conn.create_function("exist", 2, _hstore_exist, deterministic=True)
        conn.create_function(ARROW_FUNCTION, 2, _hstore_get, deterministic=True)
        conn.create_function("defined", 2, _hstore_defined, deterministic=True)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.set_authorizer(self._authorize if include_hidden else self._authorize_visible)
        reader = _Reader(conn, include_hidden)
        conn.set_progress_handler(reader.over_time, 10_000)
        return reader

    @classmethod
    def _authorize_visible(
        cls, action: int, arg1: str | None, arg2: str | None, db: str | None, source: str | None
    ) -> int:
        """As :meth:`_authorize`, and ``streams`` only as the connection's own filtered view."""
        if action == sqlite3.SQLITE_READ and arg1 == "streams" and db != "temp":
            return sqlite3.SQLITE_DENY
        return cls._authorize(action, arg1, arg2, db, source)

    @staticmethod
    def _authorize(
        action: int, arg1: str | None, arg2: str | None, db: str | None, source: str | None
    ) -> int:
        if action == sqlite3.SQLITE_SELECT:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ:
            if arg1 == "streams" and arg2 in _STREAMS_COLUMNS:
                return sqlite3.SQLITE_OK
            if arg1 == "stream_meta" and source == "streams" and arg2 in _VIEW_SOURCE_COLUMNS:
                return sqlite3.SQLITE_OK
            if arg1 in _JSON_TABLES:
                return sqlite3.SQLITE_OK
            if db is None:  # a common table expression or subquery, not a stored table
                return sqlite3.SQLITE_OK
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION:
            return sqlite3.SQLITE_OK if (arg2 or "").lower() in ALLOWED_FUNCTIONS else sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_RECURSIVE:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    def query(
        self, query: str, params: Sequence[Any] | None = None, include_hidden: bool = True
    ) -> list[dict[str, Any]]:
        """Run one SELECT over the ``streams`` view and return its rows as dicts.

        Parameters
        ----------
        query
            PostgreSQL-flavoured SQL (see :mod:`pingthings.server.metadata.sql_rewrite`).
        params
            Values for ``$1``, ``$2``, … (bound, never interpolated).
        include_hidden
            False: the query sees a ``streams`` view without the streams whose ``hidden`` tag is
            true (what a caller without an admin key gets).

        Returns
        -------
        list of dict
            One dict per row, keyed by column name: uuid as canonical text, timestamps as
            ISO-8601 text, ``annotations`` as a dict, ``watched`` as a bool.

        Raises
        ------
        BadSQL
            The query is not a single permitted SELECT, names private tables, fails, runs too
            long, or its parameters do not match its placeholders.
        """
        text, tokens = rewrite(query, self._native_arrows)
        first = tokens[0].word
        if first not in ("select", "with", "values"):
            raise BadSQL(f"only SELECT queries are allowed, not {tokens[0].text.upper()!r}")
        for token in tokens:
            if token.word in PRIVATE_NAMES or token.word.startswith(("sqlite_", "pragma_")):
                raise BadSQL(f"{token.text!r} is not a table a query may use; query the streams table")
        values = self._check_params(params)
        reader = self._take(include_hidden)
        budget = QUERY_SECONDS if self._query_seconds is None else self._query_seconds
        reader.deadline = time.monotonic() + budget
        try:
            cursor = reader.conn.execute(text, values)
            rows = cursor.fetchmany(MAX_ROWS + 1)
            names = [column[0] for column in cursor.description or ()]
            cursor.close()
        except sqlite3.Error as exc:
            raise BadSQL(self._explain(exc, budget)) from None
        finally:
            self._give_back(reader)
        if len(rows) > MAX_ROWS:
            raise BadSQL(f"the query returns more than {MAX_ROWS} rows; narrow it or add a LIMIT")
        keys = [self._column_key(name) for name in names]
        return [
            {key: self._convert(key, value) for key, value in zip(keys, row, strict=True)} for row in rows
        ]

    @staticmethod
    def _check_params(params: Sequence[Any] | None) -> list[Any]:
        if params is None:
            return []
        if isinstance(params, (str, bytes)):
            raise BadSQL("params must be a list of values, not a single string")
        values = list(params)
        for value in values:
            if value is not None and not isinstance(value, (str, int, float)):
                raise BadSQL(f"a parameter must be text or a number, not {type(value).__name__}")
        return values

    @staticmethod
    def _explain(exc: sqlite3.Error, budget: float) -> str:
        message = str(exc)
        if "interrupted" in message:
            return f"the query ran longer than {budget:g} s (or the server is stopping) and was stopped"
        if "not authorized" in message or "prohibited" in message:
            return (
                f"query refused ({message}): only SELECT over the streams table "
                f"(columns {', '.join(STREAMS_VIEW_COLUMNS)}) is allowed"
            )
        if "bindings" in message or "binding" in message:
            return f"the parameters do not match the query's $N placeholders ({message})"
        return f"SQL error: {message}"

    @staticmethod
    def _column_key(name: str) -> str:
        """Name an unaliased result column as PostgreSQL would (``count(uuid)`` → ``count``)."""
        if match := _PARENTHESISED.match(name):
            return match.group(1)
        if match := _FUNCTION_NAME.match(name):
            return match.group(1).lower()
        return name

    @staticmethod
    def _convert(key: str, value: Any) -> Any:
        if key == "annotations" and isinstance(value, str) and value.startswith("{"):
            try:
                return json.loads(value)
            except ValueError:
                return value
        if key == "watched" and isinstance(value, int):
            return bool(value)
        if isinstance(value, bytes):
            return value.hex()
        return value
