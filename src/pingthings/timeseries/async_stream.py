"""``AsyncStream``: one stream of a BTrDB database, with every call a coroutine.

Conventions shared by every method:

* times are ``int`` nanoseconds since the epoch (UTC); arguments may also be ``datetime``
  (naive means UTC), ``numpy.datetime64`` or ``pandas.Timestamp``; ranges are ``[start, end)``;
* ``version=0`` reads the latest data version;
* results carrying points are pyarrow Tables (raw: ``time``/``value``; statistics: ``time``,
  ``min``, ``mean``, ``max``, ``count``, ``stddev``) built straight from the wire codecs' numpy
  arrays, never from per-point Python objects;
* single points (``nearest``, ``earliest``, ``latest``) come back as :class:`Point`, a
  ``NamedTuple(time: int, value: float)``, or ``None`` when there is no such point;
* the ``*_iter`` methods are async generators yielding one Table per server message, so memory
  stays bounded whatever the size of the result; arguments are checked when iteration starts.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any
from uuid import UUID

import pyarrow as pa

from pingthings.timeseries import _data_calls as dc
from pingthings.timeseries._conform import conform
from pingthings.timeseries._insert import merge_policy_value, prepare
from pingthings.timeseries._insert_batches import check_batch_size, insert_in_batches
from pingthings.timeseries._metadata import (
    StreamMetadata,
    annotation_pairs,
    decode_descriptor,
    tag_pairs,
)
from pingthings.timeseries._results import Point
from pingthings.timeseries._timeargs import (
    to_ns,
    to_point_width,
    to_resolution,
    to_version,
    to_width,
    window_kind,
)
from pingthings.timeseries.constants import MAXIMUM_TIME, MINIMUM_TIME, STAT_F32_SCHEMA
from pingthings.timeseries.exceptions import InvalidCollection, NoSuchPointError, StreamNotFoundError
from pingthings.timeseries.live import DEFAULT_RECONNECT_TIMEOUT, StreamSubscription, Subscription
from pingthings.timeseries.utils.timez import currently_as_ns

if TYPE_CHECKING:
    from pingthings._proto.v5api import StreamDescriptor
    from pingthings.timeseries._rpc import CallTarget

__all__ = ["AsyncStream", "Point"]


class AsyncStream:
    """A handle on one stream, used from async code.

    Parameters
    ----------
    client
        The :class:`~pingthings.timeseries.async_client.AsyncClient` the stream talks through (typed as the
        small :class:`~pingthings.timeseries._rpc.CallTarget` protocol, which is all a stream needs).
    uuid
        The stream's identifier.
    known_to_exist
        True when the caller knows the stream exists (for example it came from a lookup), so
        no existence round trip is needed.
    collection, tags, annotations, property_version
        Metadata already known to the caller. A stream built by hand without them has no
        metadata until :meth:`refresh_metadata` is awaited.
    retention
        The stream's retention policy when the caller already knows it.
    """

    def __init__(
        self,
        client: CallTarget,
        uuid: UUID,
        known_to_exist: bool = False,
        collection: str | None = None,
        tags: Mapping[str, str | None] | None = None,
        annotations: Mapping[str, Any] | None = None,
        property_version: int = 0,
        retention: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(uuid, UUID):
            uuid = UUID(str(uuid))
        self._client = client
        self._uuid = uuid
        self._known_to_exist = bool(known_to_exist)
        self._collection = collection
        self._tags: dict[str, str | None] | None = dict(tags) if tags is not None else None
        self._annotations: dict[str, Any] | None = dict(annotations) if annotations is not None else None
        self._property_version = int(property_version)
        self._retention: dict[str, Any] | None = dict(retention) if retention is not None else None

    # ------------------------------------------------------------------ identity and metadata
    @property
    def client(self) -> CallTarget:
        """The async client this stream talks through."""
        return self._client

    @property
    def uuid(self) -> UUID:
        """The stream's UUID."""
        return self._uuid

    @property
    def known_to_exist(self) -> bool:
        """True once the stream is known to exist on the server."""
        return self._known_to_exist

    @property
    def has_metadata(self) -> bool:
        """True once collection, tags and annotations are known (given or refreshed)."""
        return self._collection is not None and self._tags is not None and self._annotations is not None

    @property
    def collection(self) -> str | None:
        """The stream's collection (None until metadata is known)."""
        return self._collection

    @property
    def name(self) -> str | None:
        """The ``name`` tag (None until metadata is known or when the tag is absent)."""
        return (self._tags or {}).get("name")

    @property
    def unit(self) -> str | None:
        """The ``unit`` tag (None until metadata is known or when the tag is absent)."""
        return (self._tags or {}).get("unit")

    @property
    def property_version(self) -> int:
        """The metadata (property) version last seen; separate from the data version."""
        return self._property_version

    def tags(self) -> dict[str, str | None]:
        """A copy of the stream's tags as last loaded (empty until metadata is known)."""
        return dict(self._tags or {})

    def annotations(self) -> dict[str, Any]:
        """A copy of the stream's annotations as last loaded (empty until metadata is known)."""
        return dict(self._annotations or {})

    def __repr__(self) -> str:
        return f"<AsyncStream {self._uuid} collection={self._collection!r} name={self.name!r}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncStream):
            return self._uuid == other._uuid and self._client is other._client
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._uuid)

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_descriptor(cls, client: CallTarget, descriptor: StreamDescriptor) -> AsyncStream:
        """Build a stream, metadata filled in, from a wire ``StreamDescriptor`` (e.g. a lookup result)."""
        meta = decode_descriptor(descriptor)
        return cls(
            client,
            meta.uuid,
            known_to_exist=True,
            collection=meta.collection,
            tags=meta.tags,
            annotations=meta.annotations,
            property_version=meta.property_version,
        )

    def _apply_metadata(self, meta: StreamMetadata) -> None:
        self._collection = meta.collection
        self._tags = meta.tags
        self._annotations = meta.annotations
        self._property_version = meta.property_version
        self._known_to_exist = True

    # ------------------------------------------------------------------ metadata calls
    async def refresh_metadata(self) -> None:
        """Reload collection, tags, annotations and property version from the server.

        Raises
        ------
        StreamNotFoundError
            If the stream does not exist.
        """
        desc = await dc.stream_descriptor(self._client, self._uuid)
        self._apply_metadata(decode_descriptor(desc))

    async def ensure_metadata(self) -> None:
        """Load the metadata once if it is not known yet (no call when it is)."""
        if not self.has_metadata:
            await self.refresh_metadata()

    async def exists(self) -> bool:
        """True if the stream exists on the server (its metadata is refreshed on the way)."""
        try:
            await self.refresh_metadata()
        except StreamNotFoundError:
            return False
        return True

    async def update(
        self,
        tags: Mapping[str, str | None] | None = None,
        annotations: Mapping[str, Any] | None = None,
        collection: str | None = None,
        replace: bool = False,
    ) -> int:
        """Change the stream's tags, annotations or collection.

        Changes are checked against the property version last seen: if someone else changed the
        metadata meanwhile the server refuses (``PropertyVersionMismatchError``) and nothing
        changes; call :meth:`refresh_metadata` and retry.

        Parameters
        ----------
        tags
            Tags to set (merged into the existing ones unless ``replace``).
        annotations
            Annotations to set; a ``str`` is stored as is, anything else as JSON.
        collection
            A new collection.
        replace
            When True, tags/annotations missing from the given mapping are removed.

        Returns
        -------
        int
            The new property version. Tags and annotations are separate server calls, so one
            update that changes both raises the property version by two.
        """
        if tags is None and annotations is None and collection is None:
            raise ValueError("update needs at least one of tags, annotations or collection")
        if tags is not None and not isinstance(tags, Mapping):
            raise TypeError(f"tags must be a dict, got {type(tags).__name__}")
        if annotations is not None and not isinstance(annotations, Mapping):
            raise TypeError(f"annotations must be a dict, got {type(annotations).__name__}")
        if collection is not None and (not isinstance(collection, str) or not collection):
            raise InvalidCollection(f"collection must be a non-empty str, got {collection!r}")
        await self.ensure_metadata()
        if tags is not None or collection is not None:
            new_tags = dict(tags or {})
            removed = []
            if replace and tags is not None:
                removed = [k for k in (self._tags or {}) if k not in new_tags]
            await dc.set_tags(
                self._client,
                self._uuid,
                self._property_version,
                tag_pairs(new_tags),
                collection if collection is not None else (self._collection or ""),
                removed,
            )
            self._property_version += 1
        if annotations is not None:
            removed = [k for k in (self._annotations or {}) if k not in annotations] if replace else []
            await dc.set_annotations(
                self._client, self._uuid, self._property_version, annotation_pairs(annotations), removed
            )
        await self.refresh_metadata()
        return self._property_version

    async def get_retention(self) -> dict[str, Any]:
        """The stream's retention policy (platform GetStreamRetention).

        Returns
        -------
        dict
            ``{"retention": policy or None, "effective": policy or None}`` where a policy is
            ``{"remove_older_than": datetime.timedelta | None, "override_per_stream": bool}``
            (``remove_older_than`` None: data is never trimmed). ``retention`` is the policy set
            on the stream itself, ``effective`` what the server enforces after weighing the
            stream's and the collection's policies.
        """
        result = await dc.stream_retention(self._client, self._uuid)
        self._retention = result
        return dict(result)

    # ------------------------------------------------------------------ versions
    async def get_latest_version(self) -> int:
        """The stream's current data version."""
        return await dc.latest_version(self._client, self._uuid)

    async def get_version_at_time(self, time: Any) -> int:
        """The data version that was current at wall-clock ``time`` (platform VersionAtTime)."""
        return await dc.version_at_time(self._client, self._uuid, to_ns(time, "time"))

    # ------------------------------------------------------------------ raw values
    async def raw_values(
        self, start: Any, end: Any, version: int = 0, schema: pa.Schema | None = None
    ) -> pa.Table:
        """Every point with ``start <= time < end``.

        Parameters
        ----------
        start, end
            The time range (int ns, datetime, numpy.datetime64, pandas.Timestamp).
        version
            The data version to read (0: latest).
        schema
            Optional schema to cast the result to (for example float32 values).

        Returns
        -------
        pyarrow.Table
            ``time: timestamp[ns, tz=UTC]``, ``value: float64``, sorted by time.
        """
        s, e, v = to_ns(start, "start"), to_ns(end, "end"), to_version(version)
        return _finish(await dc.raw_values_table(self._client, self._uuid, s, e, v), schema)

    async def raw_values_iter(self, start: Any, end: Any, version: int = 0) -> AsyncGenerator[pa.Table, None]:
        """Like :meth:`raw_values`, one Table per server message, without holding the whole result.

        Yields nothing for an empty range.
        """
        s, e, v = to_ns(start, "start"), to_ns(end, "end"), to_version(version)
        async with aclosing(dc.raw_values_chunks(self._client, self._uuid, s, e, v)) as chunks:
            async for table in chunks:
                if table.num_rows:
                    yield table

    # ------------------------------------------------------------------ statistics
    async def aligned_windows(
        self,
        start: Any,
        end: Any,
        point_width: int,
        version: int = 0,
        schema: pa.Schema | None = STAT_F32_SCHEMA,
    ) -> pa.Table:
        """Statistics over windows of ``2**point_width`` ns aligned to multiples of the width.

        ``start`` and ``end`` are rounded down to a multiple of the width; windows holding no
        point are omitted. Cheap at any size: the server answers from its tree's summaries.

        Parameters
        ----------
        start, end
            The time range.
        point_width
            log2 of the window width in ns (0..63); a ``PW`` constant works too.
        version
            The data version to read (0: latest).
        schema
            The stat schema of the result: ``STAT_F32_SCHEMA`` (default, float32 statistics),
            ``STAT_F64_SCHEMA`` or ``None`` for the server's float64.

        Returns
        -------
        pyarrow.Table
            ``time`` (window start), ``min``, ``mean``, ``max``, ``count``, ``stddev``.
        """
        s, e, v = to_ns(start, "start"), to_ns(end, "end"), to_version(version)
        pw = to_point_width(point_width)
        chunks = [t async for t in dc.aligned_windows_chunks(self._client, self._uuid, s, e, pw, v)]
        return _finish(dc.concat_stat(chunks), schema)

    async def aligned_windows_iter(
        self,
        start: Any,
        end: Any,
        point_width: int,
        version: int = 0,
        schema: pa.Schema | None = STAT_F32_SCHEMA,
    ) -> AsyncGenerator[pa.Table, None]:
        """Like :meth:`aligned_windows`, one Table per server message."""
        s, e, v = to_ns(start, "start"), to_ns(end, "end"), to_version(version)
        pw = to_point_width(point_width)
        async with aclosing(dc.aligned_windows_chunks(self._client, self._uuid, s, e, pw, v)) as chunks:
            async for table in chunks:
                if table.num_rows:
                    yield _finish(table, schema)

    async def precise_windows(
        self,
        start: Any,
        end: Any,
        width: int,
        version: int = 0,
        schema: pa.Schema | None = STAT_F32_SCHEMA,
    ) -> pa.Table:
        """Statistics over windows of any ``width`` ns: ``[start + k*width, start + (k+1)*width)``.

        ``end`` is truncated to a whole number of windows. Windows without points are returned
        with ``count`` 0 and zero statistics.

        Parameters
        ----------
        start, end
            The time range.
        width
            Window width in ns (int, timedelta or numpy.timedelta64).
        version
            The data version to read (0: latest).
        schema
            As for :meth:`aligned_windows`.
        """
        s, e, v = to_ns(start, "start"), to_ns(end, "end"), to_version(version)
        w = to_width(width)
        chunks = [t async for t in dc.windows_chunks(self._client, self._uuid, s, e, w, v)]
        return _finish(dc.concat_stat(chunks), schema)

    async def precise_windows_iter(
        self,
        start: Any,
        end: Any,
        width: int,
        version: int = 0,
        schema: pa.Schema | None = STAT_F32_SCHEMA,
    ) -> AsyncGenerator[pa.Table, None]:
        """Like :meth:`precise_windows`, one Table per server message."""
        s, e, v = to_ns(start, "start"), to_ns(end, "end"), to_version(version)
        w = to_width(width)
        async with aclosing(dc.windows_chunks(self._client, self._uuid, s, e, w, v)) as chunks:
            async for table in chunks:
                if table.num_rows:
                    yield _finish(table, schema)

    async def windowed_values(
        self,
        start: Any,
        end: Any,
        width: int,
        version: int = 0,
        schema: pa.Schema | None = STAT_F32_SCHEMA,
    ) -> pa.Table:
        """Aligned windows when ``width`` is a ``PW[i]`` point width or a power-of-two number of ns,
        precise windows of ``width`` ns otherwise."""
        kind, arg = window_kind(width)
        if kind == "aligned":
            return await self.aligned_windows(start, end, arg, version, schema)
        return await self.precise_windows(start, end, arg, version, schema)

    async def count(
        self,
        start: Any = MINIMUM_TIME,
        end: Any = MAXIMUM_TIME,
        version: int = 0,
        precise: bool = False,
    ) -> int:
        """The number of points in ``[start, end)``.

        Parameters
        ----------
        precise
            False (default): sum the counts of aligned windows of width ``2**pw`` with
            ``pw = floor(log2(end - start)) - 1``; a few summaries, but the range edges snap
            down to that alignment, so the count is approximate unless the range is aligned
            (the whole time axis, the default, is). True: one exact window over ``[start, end)``.
        """
        s, e, v = to_ns(start, "start"), to_ns(end, "end"), to_version(version)
        if e <= s:
            return 0
        pw = (e - s).bit_length() - 2  # floor(log2(e - s)) - 1
        if precise or pw < 1:
            table = dc.concat_stat(
                [t async for t in dc.windows_chunks(self._client, self._uuid, s, e, e - s, v)]
            )
        else:
            table = dc.concat_stat(
                [t async for t in dc.aligned_windows_chunks(self._client, self._uuid, s, e, min(pw, 62), v)]
            )
        return int(sum(table.column("count").to_numpy().tolist())) if table.num_rows else 0

    # ------------------------------------------------------------------ single points
    async def nearest(self, time: Any, version: int = 0, backward: bool = False) -> Point | None:
        """The point nearest to ``time``: the first with ``t >= time``, or with ``backward`` the last
        with ``t < time``. None when there is no such point (for example an empty stream)."""
        t, v = to_ns(time, "time"), to_version(version)
        try:
            return await dc.nearest(self._client, self._uuid, t, v, bool(backward))
        except NoSuchPointError:
            return None

    async def earliest(self, version: int = 0) -> Point | None:
        """The first point of the stream, or None if it is empty."""
        return await self.nearest(MINIMUM_TIME, version, backward=False)

    async def latest(self, version: int = 0) -> Point | None:
        """The last point of the stream, or None if it is empty."""
        return await self.nearest(MAXIMUM_TIME, version, backward=True)

    def subscribe(self, reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT) -> StreamSubscription:
        """Watch the points inserted into this stream from now on.

        Use as ``async for table in stream.subscribe(): ...`` (each item a pyarrow Table of one
        inserted batch, ``time``/``value`` in insertion order), preferably inside
        ``async with stream.subscribe() as live:`` so the call closes when the block ends.

        Parameters
        ----------
        reconnect_timeout
            Seconds to keep reconnecting after the connection dropped (0: raise at once). See
            :mod:`pingthings.timeseries.live` for what resuming guarantees.

        Returns
        -------
        StreamSubscription
            An async iterator with ``stop()`` and ``aclose()``.
        """
        return StreamSubscription(Subscription([self], reconnect_timeout))

    async def current(self, version: int = 0) -> Point | None:
        """The last point before now (wall clock), or None if there is none."""
        return await self.nearest(currently_as_ns(), version, backward=True)

    # ------------------------------------------------------------------ changes
    async def changes(
        self, from_version: int, to_version: int = 0, resolution: int = 0
    ) -> list[dict[str, int]]:
        """Time ranges whose data may differ between two versions.

        Parameters
        ----------
        from_version
            Exclusive: changes made after this version (0: since creation).
        to_version
            Inclusive: up to this version (0: latest).
        resolution
            log2 ns; coarser ranges (higher values) are cheaper to compute.

        Returns
        -------
        list of dict
            ``{"start": ns, "end": ns}`` ranges ``[start, end)``, sorted, disjoint, aligned to
            the server's tree (they can be wider than the data that changed).
        """
        out: list[dict[str, int]] = []
        async for chunk in self._changes_chunks(from_version, to_version, resolution):
            out.extend(chunk)
        return out

    async def changes_iter(
        self, from_version: int, to_version: int = 0, resolution: int = 0
    ) -> AsyncGenerator[dict[str, int], None]:
        """Like :meth:`changes`, yielding the ranges as the server sends them."""
        async with aclosing(self._changes_chunks(from_version, to_version, resolution)) as chunks:
            async for chunk in chunks:
                for item in chunk:
                    yield item

    async def _changes_chunks(
        self, from_version: int, to_version: int = 0, resolution: int = 0
    ) -> AsyncGenerator[list[dict[str, int]], None]:
        fv = _version_arg(from_version, "from_version")
        tv = _version_arg(to_version, "to_version")
        res = to_resolution(resolution)
        async with aclosing(dc.changes_chunks(self._client, self._uuid, fv, tv, res)) as chunks:
            async for starts, ends in chunks:
                yield [{"start": int(s), "end": int(e)} for s, e in zip(starts, ends, strict=True)]

    # ------------------------------------------------------------------ writes
    async def insert(self, data: Any, merge: str = "never", batch_size: int | None = None) -> int:
        """Insert points.

        Parameters
        ----------
        data
            A pyarrow Table (columns ``time``/``value`` or the first two columns), a pandas
            DataFrame (same; or a DatetimeIndex and one column) or Series, a pair of arrays
            ``(times, values)``, or a sequence of ``(time, value)`` pairs. Times may be int ns
            or timestamps; values must be finite.
        merge
            What happens to a point whose time is already stored: ``"never"`` keeps both,
            ``"equal"`` drops exact (time, value) duplicates, ``"retain"`` keeps the old value,
            ``"replace"`` keeps the new one.

        batch_size
            Points per Insert call (default: the client's ``insert_batch_size``, which follows the
            server: 25,000 for BTrDB 4, 50,000 for v5).

        Returns
        -------
        int
            The stream's version after the insert.

        Raises
        ------
        PartialInsertError
            A batch failed after others were written; its ``written`` attribute lists the
            acknowledged batches (time range, points, version). Bad data is rejected before
            anything is sent.

        Notes
        -----
        The first batch is sent alone; the others follow concurrently under the client's
        concurrency limit once it is written, so a request the server refuses writes nothing. A
        batch the server refuses as too big (414) is halved and sent again.
        """
        policy = merge_policy_value(merge)
        times, values = prepare(data)
        if times.size == 0:
            return await self.get_latest_version()
        client = self._client
        size = client.insert_batch_size if batch_size is None else check_batch_size(batch_size, "batch_size")
        version, used = await insert_in_batches(client, self._uuid, times, values, policy, size)
        if batch_size is None and used < client.insert_batch_size:
            client.insert_batch_size = used  # the server's limit is lower than thought: remember it
        return version

    async def delete(self, start: Any, end: Any) -> int:
        """Delete every point with ``start <= time < end``; returns the new version.

        Older versions keep the points.
        """
        return await dc.delete(self._client, self._uuid, to_ns(start, "start"), to_ns(end, "end"))

    async def flush(self) -> None:
        """Ask the server to make buffered writes durable."""
        await dc.flush(self._client, self._uuid)

    async def obliterate(self) -> None:
        """Remove the stream and all its data and versions; its UUID cannot be reused."""
        await dc.obliterate(self._client, self._uuid)
        self._known_to_exist = False


def _version_arg(value: Any, name: str) -> int:
    return to_version(value, name)


def _finish(table: pa.Table, schema: pa.Schema | None) -> pa.Table:
    """Cast a result table to the asked schema (no-op when it already matches or none is asked)."""
    return conform(table, schema)
