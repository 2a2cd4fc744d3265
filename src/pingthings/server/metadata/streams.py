"""Stream metadata: create, read, look up, change tags and annotations, obliterate."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping

from pingthings.server.errors import (
    AmbiguousStream,
    InvalidTagKey,
    PropertyVersionMismatch,
    ReusedUUID,
    SameStream,
    StreamNotFound,
    WrongArgs,
)
from pingthings.server.metadata.database import StoreCore
from pingthings.server.metadata.records import StreamRecord
from pingthings.server.metadata.timestamps import iso_from_ns
from pingthings.server.metadata.validation import (
    as_mapping,
    check_annotation_key,
    check_annotation_value,
    check_annotations,
    check_collection,
    check_collection_filter,
    check_key_list,
    check_name_value,
    check_new_tags,
    check_tag_key,
    check_tag_value,
    check_uuid,
    is_hidden,
)

_RECORD_COLUMNS = "uuid, collection, tags, annotations, property_version, created_at, updated_at"

#: Weight of the newest write in ``long_term_autoregressive_average``.
_AVERAGE_WEIGHT = 0.05
#: Most consecutive activity records of one stream folded into one UPDATE.
_FOLD = 32


def _folded_update(uuid: bytes, records: list[tuple[int, int]], now: str) -> tuple[str, tuple[object, ...]]:
    """One UPDATE with the effect of one per ``(last_written_ns, points)`` record (two or more).

    The moving average takes the same steps as those UPDATEs would (``avg * (1 - w) + w * points``
    per record, nested in SQL when it is not NULL yet, computed here when it is), so it ends bit
    for bit the same.
    """
    average = "long_term_autoregressive_average"
    steps: list[float] = []
    for _, points in records:
        average = f"({average} * ? + ?)"
        steps += [1.0 - _AVERAGE_WEIGHT, _AVERAGE_WEIGHT * points]
    first = float(records[0][1])  # the NULL case: the first record sets it, the others step it
    for _, points in records[1:]:
        first = first * (1.0 - _AVERAGE_WEIGHT) + _AVERAGE_WEIGHT * points
    sql = (
        "UPDATE stream_meta SET previous_last_written = ?, last_written = ?, estimated_count_delta = ?,"
        " long_term_autoregressive_average = CASE WHEN long_term_autoregressive_average IS NULL"
        f" THEN ? ELSE {average} END, previous_count_last_updated = ?, count_last_updated = ? WHERE uuid = ?"
    )
    params = (
        iso_from_ns(records[-2][0]),
        iso_from_ns(records[-1][0]),
        records[-1][1],
        first,
        *steps,
        now,
        now,
        uuid,
    )
    return sql, params


def _record(row: tuple) -> StreamRecord:
    uuid, collection, tags, annotations, version, created, updated = row
    return StreamRecord(
        uuid=bytes(uuid),
        collection=collection,
        tags=json.loads(tags),
        annotations=json.loads(annotations),
        property_version=version,
        created_at=created,
        updated_at=updated,
    )


def _dump(mapping: Mapping[str, str | None]) -> str:
    return json.dumps(dict(sorted(mapping.items())), ensure_ascii=False, separators=(",", ":"))


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix``.

    SQLite compares text as UTF-8 bytes, which orders like code points, so bumping the last code
    point gives the bound. ``None`` when there is none (a prefix of only U+10FFFF).
    """
    chars = list(prefix)
    while chars:
        point = ord(chars.pop()) + 1
        if 0xD800 <= point <= 0xDFFF:
            point = 0xE000
        if point <= 0x10FFFF:
            return "".join(chars) + chr(point)
    return None


def collection_prefix_clause(prefix: str) -> tuple[str, list[object]]:
    """SQL condition (and its parameters) for ``collection`` starting with ``prefix``."""
    if not prefix:
        return "1", []
    upper = prefix_upper_bound(prefix)
    if upper is None:
        return "collection >= ?", [prefix]
    return "collection >= ? AND collection < ?", [prefix, upper]


class StreamsMixin(StoreCore):
    """The stream half of :class:`~pingthings.server.metadata.MetadataStore`."""

    #: Uuids of live streams whose ``hidden`` tag is true (kept in step with every write below,
    #: so the RPC layer checks visibility without a database read).
    _hidden_uuids: set[bytes]

    def _load_hidden(self) -> None:
        with self._read() as conn:
            rows = conn.execute("SELECT uuid FROM stream_meta WHERE hidden = 1").fetchall()
        self._hidden_uuids = {bytes(row[0]) for row in rows}

    def _note_hidden(self, uuid: bytes, hidden: bool) -> None:
        if hidden:
            self._hidden_uuids.add(uuid)
        else:
            self._hidden_uuids.discard(uuid)

    def is_hidden_stream(self, uuid: bytes) -> bool:
        """Whether ``uuid`` names a live stream whose ``hidden`` tag is true (no database read)."""
        return uuid in self._hidden_uuids

    # -- creation and identity -------------------------------------------------------------

    def create_stream(
        self,
        uuid: bytes,
        collection: str,
        tags: Mapping[str, str | None],
        annotations: Mapping[str, str | None] | None = None,
    ) -> StreamRecord:
        """Create a stream's metadata (property version 1).

        Raises
        ------
        WrongArgs
            ``uuid`` is not 16 bytes.
        InvalidCollection, InvalidTagKey, InvalidTagValue
            Bad collection, tag or annotation (407, 408, 409); ``name`` is required.
        SameStream
            A live stream already has this uuid (417).
        ReusedUUID
            The uuid belonged to an obliterated stream (429).
        AmbiguousStream
            Another live stream has the same collection and name (418).
        """
        uuid = check_uuid(uuid)
        collection = check_collection(collection)
        checked_tags = check_new_tags(tags)
        checked_annotations = check_annotations(annotations)
        name = checked_tags["name"]
        now = iso_from_ns(self._now_ns())
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM stream_meta WHERE uuid = ?", (uuid,)).fetchone():
                raise SameStream("a stream with this uuid already exists")
            if conn.execute("SELECT 1 FROM obliterated_streams WHERE uuid = ?", (uuid,)).fetchone():
                raise ReusedUUID("this uuid belonged to an obliterated stream and cannot be reused")
            self._check_identity_free(conn, collection, str(name), uuid)
            conn.execute(
                "INSERT INTO stream_meta (uuid, collection, name, tags, annotations, property_version,"
                " hidden, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?)",
                (
                    uuid,
                    collection,
                    name,
                    _dump(checked_tags),
                    _dump(checked_annotations),
                    int(is_hidden(checked_tags)),
                    now,
                    now,
                ),
            )
            self._note_hidden(uuid, is_hidden(checked_tags))
        return StreamRecord(uuid, collection, checked_tags, checked_annotations, 1, now, now)

    @staticmethod
    def _check_identity_free(conn: sqlite3.Connection, collection: str, name: str, uuid: bytes) -> None:
        row = conn.execute(
            "SELECT uuid FROM stream_meta WHERE collection = ? AND name = ? AND uuid != ?",
            (collection, name, uuid),
        ).fetchone()
        if row is not None:
            raise AmbiguousStream(
                f"another stream already has collection {collection!r} and name {name!r}; "
                "two streams can not share both the same collection and name"
            )

    def get_stream(self, uuid: bytes) -> StreamRecord:
        """The metadata of a live stream; StreamNotFound (404) otherwise."""
        uuid = check_uuid(uuid)
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_RECORD_COLUMNS} FROM stream_meta WHERE uuid = ?", (uuid,)
            ).fetchone()
        if row is None:
            raise StreamNotFound()
        return _record(row)

    def stream_exists(self, uuid: bytes) -> bool:
        """True when ``uuid`` names a live stream."""
        uuid = check_uuid(uuid)
        with self._read() as conn:
            return conn.execute("SELECT 1 FROM stream_meta WHERE uuid = ?", (uuid,)).fetchone() is not None

    def obliterate_stream(self, uuid: bytes) -> None:
        """Remove a stream's metadata and remember its uuid so it is never reused (404 if unknown)."""
        uuid = check_uuid(uuid)
        now = iso_from_ns(self._now_ns())
        with self._write() as conn:
            if conn.execute("DELETE FROM stream_meta WHERE uuid = ?", (uuid,)).rowcount == 0:
                raise StreamNotFound()
            conn.execute(
                "INSERT OR REPLACE INTO obliterated_streams (uuid, obliterated_at) VALUES (?, ?)", (uuid, now)
            )
            self._note_hidden(uuid, False)

    # -- queries -----------------------------------------------------------------------------

    def lookup_streams(
        self,
        collection: str = "",
        is_prefix: bool = True,
        tags: Mapping[str, str | None] | None = None,
        annotations: Mapping[str, str | None] | None = None,
        include_hidden: bool = False,
    ) -> list[StreamRecord]:
        """Streams matching every filter, ordered by collection then name.

        Parameters
        ----------
        collection
            Exact collection, or a plain string prefix when ``is_prefix`` (``""``: all).
        is_prefix
            Treat ``collection`` as a prefix.
        tags, annotations
            Each entry must match: a value means "has the key with exactly this value"; ``None``
            means "has the key, any value".
        include_hidden
            Also return streams whose ``hidden`` tag is true.
        """
        collection = check_collection_filter(collection)
        clauses: list[str] = []
        params: list[object] = []
        if is_prefix:
            clause, clause_params = collection_prefix_clause(collection)
            clauses.append(clause)
            params.extend(clause_params)
        else:
            if not collection:
                return []
            clauses.append("collection = ?")
            params.append(collection)
        for key, value in as_mapping("tags", tags).items():
            check_tag_key(key)
            checked_value = check_tag_value(key, value)
            if key == "name" and checked_value is not None:
                clauses.append("name = ?")  # every stream has a name; this column is indexed
                params.append(checked_value)
            else:
                self._add_key_filter(clauses, params, "tags", key, checked_value)
        for key, value in as_mapping("annotations", annotations).items():
            check_annotation_key(key)
            self._add_key_filter(clauses, params, "annotations", key, check_annotation_value(key, value))
        if not include_hidden:
            clauses.append("hidden = 0")
        where = " AND ".join(clauses)
        sql = f"SELECT {_RECORD_COLUMNS} FROM stream_meta WHERE {where} ORDER BY collection, name"
        with self._read() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [_record(row) for row in rows]

    @staticmethod
    def _add_key_filter(
        clauses: list[str], params: list[object], column: str, key: str, value: str | None
    ) -> None:
        if value is None:
            clauses.append(f"EXISTS (SELECT 1 FROM json_each({column}) WHERE key = ?)")
            params.append(key)
        else:
            clauses.append(
                f"EXISTS (SELECT 1 FROM json_each({column}) WHERE key = ? AND type = 'text' AND value = ?)"
            )
            params.extend((key, value))

    def list_collections(self, prefix: str = "", include_hidden: bool = False) -> list[str]:
        """Sorted collections starting with ``prefix`` that hold at least one live stream."""
        if prefix is None:
            prefix = ""
        if not isinstance(prefix, str):
            raise WrongArgs("a collection prefix must be a string")
        clause, params = collection_prefix_clause(prefix)
        if not include_hidden:
            clause += " AND hidden = 0"
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT DISTINCT collection FROM stream_meta WHERE {clause} ORDER BY collection", params
            ).fetchall()
        return [row[0] for row in rows]

    def metadata_usage(
        self, prefix: str = "", include_hidden: bool = True
    ) -> tuple[dict[str, int], dict[str, int]]:
        """For streams whose collection starts with ``prefix``: how many streams have each key.

        ``include_hidden=False`` leaves out streams whose ``hidden`` tag is true.

        Returns
        -------
        tuple of dict
            (tag key → number of streams, annotation key → number of streams).
        """
        clause, params = collection_prefix_clause(prefix or "")
        if not include_hidden:
            clause += " AND hidden = 0"
        counts: list[dict[str, int]] = []
        with self._read() as conn:
            for column in ("tags", "annotations"):
                rows = conn.execute(
                    f"SELECT j.key, count(*) FROM stream_meta, json_each(stream_meta.{column}) AS j"
                    f" WHERE {clause} GROUP BY j.key ORDER BY j.key",
                    params,
                ).fetchall()
                counts.append({key: count for key, count in rows})
        return counts[0], counts[1]

    # -- changes -----------------------------------------------------------------------------

    def _load_for_change(self, conn: sqlite3.Connection, uuid: bytes, expected_version: int) -> StreamRecord:
        row = conn.execute(f"SELECT {_RECORD_COLUMNS} FROM stream_meta WHERE uuid = ?", (uuid,)).fetchone()
        if row is None:
            raise StreamNotFound()
        record = _record(row)
        if not isinstance(expected_version, int) or expected_version < 0:
            raise WrongArgs("the expected property version must be a non-negative integer")
        if expected_version != 0 and expected_version != record.property_version:
            raise PropertyVersionMismatch(
                f"stream annotation version does not match: expected {expected_version}, "
                f"current {record.property_version}"
            )
        return record

    def set_annotations(
        self,
        uuid: bytes,
        expected_version: int,
        changes: Mapping[str, str | None],
        removals: Iterable[str] = (),
    ) -> StreamRecord:
        """Upsert and remove annotations atomically; the property version rises by 1.

        ``expected_version`` 0 means "any version"; otherwise a mismatch raises
        PropertyVersionMismatch (423) and nothing changes. A change whose value is ``None``
        deletes the key (the v4 meaning of a KeyOptValue without a value).
        """
        uuid = check_uuid(uuid)
        checked = {
            check_annotation_key(k): check_annotation_value(k, v)
            for k, v in as_mapping("changes", changes).items()
        }
        removed = check_key_list(removals, tags=False)
        with self._write() as conn:
            record = self._load_for_change(conn, uuid, expected_version)
            annotations = dict(record.annotations)
            for key, value in checked.items():
                if value is None:
                    annotations.pop(key, None)
                else:
                    annotations[key] = value
            for key in removed:
                annotations.pop(key, None)
            now = iso_from_ns(self._now_ns())
            conn.execute(
                "UPDATE stream_meta SET annotations = ?, property_version = property_version + 1,"
                " updated_at = ? WHERE uuid = ?",
                (_dump(annotations), now, uuid),
            )
        return StreamRecord(
            uuid,
            record.collection,
            record.tags,
            annotations,
            record.property_version + 1,
            record.created_at,
            now,
        )

    def set_tags(
        self,
        uuid: bytes,
        expected_version: int,
        tags: Mapping[str, str | None],
        collection: str = "",
        remove: Iterable[str] = (),
    ) -> StreamRecord:
        """Change a stream's collection and tags atomically; the property version rises by 1.

        An empty ``collection`` leaves it unchanged. A tag whose value is ``None`` is deleted, as
        is every key in ``remove``; the ``name`` tag can be changed but never removed. The new
        collection and name must not belong to another stream (418).
        """
        uuid = check_uuid(uuid)
        new_collection = check_collection(collection) if collection else ""
        checked: dict[str, str | None] = {}
        for key, value in as_mapping("tags", tags).items():
            check_tag_key(key)
            if key == "name":
                if value is None:
                    raise InvalidTagKey("the 'name' tag cannot be removed")
                checked[key] = check_name_value(value)
            else:
                checked[key] = check_tag_value(key, value)
        removed = check_key_list(remove, tags=True)
        if "name" in removed:
            raise InvalidTagKey("the 'name' tag cannot be removed")
        with self._write() as conn:
            record = self._load_for_change(conn, uuid, expected_version)
            new_tags = dict(record.tags)
            for key, value in checked.items():
                if value is None:
                    new_tags.pop(key, None)
                else:
                    new_tags[key] = value
            for key in removed:
                new_tags.pop(key, None)
            target = new_collection or record.collection
            name = str(new_tags["name"])
            self._check_identity_free(conn, target, name, uuid)
            now = iso_from_ns(self._now_ns())
            conn.execute(
                "UPDATE stream_meta SET collection = ?, name = ?, tags = ?, hidden = ?,"
                " property_version = property_version + 1, updated_at = ? WHERE uuid = ?",
                (target, name, _dump(new_tags), int(is_hidden(new_tags)), now, uuid),
            )
        self._note_hidden(uuid, is_hidden(new_tags))
        return StreamRecord(
            uuid, target, new_tags, record.annotations, record.property_version + 1, record.created_at, now
        )

    # -- write bookkeeping ---------------------------------------------------------------------

    def record_write(self, uuid: bytes, last_written_ns: int, points_added: int) -> None:
        """Note a data write so the SQL view's activity columns stay current.

        ``previous_last_written`` takes the old ``last_written``; ``estimated_count_delta`` is
        the number of points of this write; ``long_term_autoregressive_average`` is an
        exponential moving average of that number; ``count_last_updated`` is the wall-clock time
        of this call and ``previous_count_last_updated`` the one before. Unknown streams are
        ignored (the data path has already checked existence; a concurrent obliterate may win).
        """
        self.record_writes([(uuid, last_written_ns, points_added)])

    def record_writes(self, writes: Iterable[tuple[bytes, int, int]]) -> None:
        """:meth:`record_write` for each ``(uuid, last_written_ns, points_added)``, in order, in
        one transaction (they share this call's wall-clock time).

        Consecutive records of one stream (a client writing one call after another sends a few
        hundred between two batches) are folded into one UPDATE of up to :data:`_FOLD` records
        whose moving average repeats the same floating-point steps, so the columns end exactly as
        after one UPDATE per record (about 16 µs each) at a fraction of the cost.
        """
        now = iso_from_ns(self._now_ns())
        per_stream: dict[bytes, list[tuple[int, int]]] = {}
        for uuid, last_written_ns, points in writes:
            per_stream.setdefault(check_uuid(uuid), []).append((int(last_written_ns), int(points)))
        single: list[tuple[object, ...]] = []
        folded: list[tuple[str, tuple[object, ...]]] = []
        for uuid, records in per_stream.items():  # streams are rows of their own: any order
            for at in range(0, len(records), _FOLD):
                part = records[at : at + _FOLD]
                if len(part) == 1:
                    wall, points = part[0]
                    single.append(
                        (
                            iso_from_ns(wall),
                            points,
                            float(points),
                            1.0 - _AVERAGE_WEIGHT,
                            _AVERAGE_WEIGHT * points,
                            now,
                            uuid,
                        )
                    )
                else:
                    folded.append(_folded_update(uuid, part, now))
        with self._write() as conn:
            for sql, params in folded:
                conn.execute(sql, params)
            if single:
                conn.executemany(
                    "UPDATE stream_meta SET previous_last_written = last_written, last_written = ?,"
                    " estimated_count_delta = ?,"
                    " long_term_autoregressive_average = CASE WHEN long_term_autoregressive_average IS NULL"
                    " THEN ? ELSE long_term_autoregressive_average * ? + ? END,"
                    " previous_count_last_updated = count_last_updated, count_last_updated = ?"
                    " WHERE uuid = ?",
                    single,
                )
