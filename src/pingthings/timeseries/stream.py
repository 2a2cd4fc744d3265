"""``Stream``: the synchronous face of :class:`~pingthings.timeseries.async_stream.AsyncStream`.

Every method runs the matching coroutine on the client's :class:`ClientEventLoop`; the ``*_iter``
methods pull the async iterator chunk by chunk through it, so memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

import pyarrow as pa

from pingthings.timeseries._results import Point
from pingthings.timeseries.async_stream import AsyncStream
from pingthings.timeseries.constants import MAXIMUM_TIME, MINIMUM_TIME, STAT_F32_SCHEMA
from pingthings.timeseries.live import DEFAULT_RECONNECT_TIMEOUT

if TYPE_CHECKING:
    from pingthings.timeseries.event_loop import ClientEventLoop
    from pingthings.timeseries.sync_connection import SyncConnection

__all__ = ["Point", "Stream"]

#: Changed ranges fetched ahead of a ``changes_iter`` loop, and taken per trip to the event loop.
_CHANGES_READ_AHEAD = 1024


class Stream:
    """A handle on one stream, used from ordinary (blocking) code.

    Metadata (collection, name, unit, tags, annotations) is loaded from the server on first use
    when the stream was made without it; :meth:`refresh_metadata` reloads it.

    Parameters
    ----------
    conn
        The synchronous :class:`~pingthings.timeseries.client.Client`.
    stream
        The async stream this object wraps. Alternatively give ``uuid`` (and any metadata
        already known, as for :class:`AsyncStream`) and the async stream is made here.
    """

    def __init__(
        self,
        conn: SyncConnection,
        stream: AsyncStream | None = None,
        uuid: UUID | str | None = None,
        known_to_exist: bool = False,
        collection: str | None = None,
        tags: Mapping[str, str | None] | None = None,
        annotations: Mapping[str, Any] | None = None,
        property_version: int = 0,
    ) -> None:
        if stream is None:
            if uuid is None:
                raise TypeError("Stream needs either an AsyncStream or a uuid")
            stream = AsyncStream(
                conn.get_async_client(),
                uuid if isinstance(uuid, UUID) else UUID(str(uuid)),
                known_to_exist=known_to_exist,
                collection=collection,
                tags=tags,
                annotations=annotations,
                property_version=property_version,
            )
        elif not isinstance(stream, AsyncStream):
            raise TypeError(f"Stream wraps an AsyncStream, got {type(stream).__name__}")
        self._conn = conn
        self._stream = stream

    # ------------------------------------------------------------------ plumbing
    @property
    def conn(self) -> SyncConnection:
        """The synchronous client (a :class:`~pingthings.timeseries.client.Client`)."""
        return self._conn

    @property
    def async_stream(self) -> AsyncStream:
        """The wrapped :class:`AsyncStream`."""
        return self._stream

    def _loop(self) -> ClientEventLoop:
        return self._conn.get_event_loop()

    def _meta(self) -> AsyncStream:
        if not self._stream.has_metadata:
            self._loop().call(self._stream.ensure_metadata)
        return self._stream

    # ------------------------------------------------------------------ metadata
    @property
    def uuid(self) -> UUID:
        """The stream's UUID."""
        return self._stream.uuid

    @property
    def collection(self) -> str | None:
        """The stream's collection (None until metadata is known)."""
        return self._meta().collection

    @property
    def name(self) -> str | None:
        """The ``name`` tag (None until metadata is known or when the tag is absent)."""
        return self._meta().name

    @property
    def unit(self) -> str | None:
        """The ``unit`` tag (None until metadata is known or when the tag is absent)."""
        return self._meta().unit

    @property
    def property_version(self) -> int:
        """The metadata (property) version last seen; separate from the data version."""
        return self._meta().property_version

    def tags(self) -> dict[str, str | None]:
        """A copy of the stream's tags as last loaded (empty until metadata is known)."""
        return self._meta().tags()

    def annotations(self) -> dict[str, Any]:
        """A copy of the stream's annotations as last loaded (empty until metadata is known)."""
        return self._meta().annotations()

    def refresh_metadata(self) -> None:
        """Reload collection, tags, annotations and property version from the server."""
        self._loop().call(self._stream.refresh_metadata)

    def exists(self) -> bool:
        """True if the stream exists on the server (its metadata is refreshed on the way)."""
        return self._loop().call(self._stream.exists)

    def update(
        self,
        tags: Mapping[str, str | None] | None = None,
        annotations: Mapping[str, Any] | None = None,
        collection: str | None = None,
        replace: bool = False,
    ) -> int:
        """Change the stream's tags, annotations or collection.

        See :meth:`AsyncStream.update`.
        """
        return self._loop().call(self._stream.update, tags, annotations, collection, replace)

    def get_retention(self) -> dict[str, Any]:
        """The stream's retention policy (platform GetStreamRetention).

        See :meth:`AsyncStream.get_retention`.
        """
        return self._loop().call(self._stream.get_retention)

    # ------------------------------------------------------------------ versions
    def get_latest_version(self) -> int:
        """The stream's current data version."""
        return self._loop().call(self._stream.get_latest_version)

    def get_version_at_time(self, time: Any) -> int:
        """The data version that was current at wall-clock ``time`` (platform VersionAtTime)."""
        return self._loop().call(self._stream.get_version_at_time, time)

    # ------------------------------------------------------------------ reads
    def raw_values(self, start: Any, end: Any, version: int = 0, schema: pa.Schema | None = None) -> pa.Table:
        """Every point with ``start <= time < end``.

        See :meth:`AsyncStream.raw_values`.
        """
        return self._loop().call(self._stream.raw_values, start, end, version, schema)

    def raw_values_iter(self, start: Any, end: Any, version: int = 0) -> Iterator[pa.Table]:
        """Like :meth:`raw_values`, one Table per server message, without holding the whole result."""
        return self._loop().iterate(self._stream.raw_values_iter(start, end, version))

    def aligned_windows(
        self,
        start: Any,
        end: Any,
        point_width: int,
        version: int = 0,
        schema: pa.Schema | None = STAT_F32_SCHEMA,
    ) -> pa.Table:
        """Statistics over windows of ``2**point_width`` ns aligned to multiples of the width.

        See :meth:`AsyncStream.aligned_windows`.
        """
        return self._loop().call(self._stream.aligned_windows, start, end, point_width, version, schema)

    def aligned_windows_iter(
        self,
        start: Any,
        end: Any,
        point_width: int,
        version: int = 0,
        schema: pa.Schema | None = STAT_F32_SCHEMA,
    ) -> Iterator[pa.Table]:
        """Like :meth:`aligned_windows`, one Table per server message."""
        source = self._stream.aligned_windows_iter(start, end, point_width, version, schema)
        return self._loop().iterate(source)

    def precise_windows(
        self,
        start: Any,
        end: Any,
        width: int,
        version: int = 0,
        schema: pa.Schema | None = STAT_F32_SCHEMA,
    ) -> pa.Table:
        """Statistics over windows of any ``width`` ns: ``[start + k*width, start + (k+1)*width)``.

        See :meth:`AsyncStream.precise_windows`.
        """
        return self._loop().call(self._stream.precise_windows, start, end, width, version, schema)

    def precise_windows_iter(
        self,
        start: Any,
        end: Any,
        width: int,
        version: int = 0,
        schema: pa.Schema | None = STAT_F32_SCHEMA,
    ) -> Iterator[pa.Table]:
        """Like :meth:`precise_windows`, one Table per server message."""
        return self._loop().iterate(self._stream.precise_windows_iter(start, end, width, version, schema))

    def windowed_values(
        self,
        start: Any,
        end: Any,
        width: int,
        version: int = 0,
        schema: pa.Schema | None = STAT_F32_SCHEMA,
    ) -> pa.Table:
        """Aligned windows when ``width`` is a ``PW[i]`` point width or a power-of-two number of ns, precise
        windows of ``width`` ns otherwise.
        """
        return self._loop().call(self._stream.windowed_values, start, end, width, version, schema)

    def count(
        self, start: Any = MINIMUM_TIME, end: Any = MAXIMUM_TIME, version: int = 0, precise: bool = False
    ) -> int:
        """The number of points in ``[start, end)``.

        See :meth:`AsyncStream.count`.
        """
        return self._loop().call(self._stream.count, start, end, version, precise)

    def nearest(self, time: Any, version: int = 0, backward: bool = False) -> Point | None:
        """The point nearest to ``time``: the first with ``t >= time``, or with ``backward`` the last
        with ``t < time``. None when there is no such point (for example an empty stream).
        """
        return self._loop().call(self._stream.nearest, time, version, backward)

    def earliest(self, version: int = 0) -> Point | None:
        """The first point of the stream, or None if it is empty."""
        return self._loop().call(self._stream.earliest, version)

    def latest(self, version: int = 0) -> Point | None:
        """The last point of the stream, or None if it is empty."""
        return self._loop().call(self._stream.latest, version)

    def subscribe(self, reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT) -> Iterator[pa.Table]:
        """Watch the points inserted into this stream from now on.

        Leaving the ``for`` loop (``break``, an exception) or closing the iterator ends the
        subscription; see :meth:`AsyncStream.subscribe`.
        """
        return self._loop().iterate(self._stream.subscribe(reconnect_timeout))

    def current(self, version: int = 0) -> Point | None:
        """The last point before now (wall clock), or None if there is none."""
        return self._loop().call(self._stream.current, version)

    def changes(self, from_version: int, to_version: int = 0, resolution: int = 0) -> list[dict[str, int]]:
        """Time ranges whose data may differ between two versions.

        See :meth:`AsyncStream.changes`.
        """
        return self._loop().call(self._stream.changes, from_version, to_version, resolution)

    def changes_iter(
        self, from_version: int, to_version: int = 0, resolution: int = 0
    ) -> Iterator[dict[str, int]]:
        """Like :meth:`changes`, yielding the ranges as the server sends them."""
        source = self._stream.changes_iter(from_version, to_version, resolution)
        yield from self._loop().iterate(source, read_ahead=_CHANGES_READ_AHEAD)

    # ------------------------------------------------------------------ writes
    def insert(self, data: Any, merge: str = "never", batch_size: int | None = None) -> int:
        """Insert points.

        Returns the version after the insert; see :meth:`AsyncStream.insert`.
        """
        return self._loop().call(self._stream.insert, data, merge, batch_size)

    def delete(self, start: Any, end: Any) -> int:
        """Delete every point with ``start <= time < end``; returns the new version."""
        return self._loop().call(self._stream.delete, start, end)

    def flush(self) -> None:
        """Ask the server to make buffered writes durable."""
        self._loop().call(self._stream.flush)

    def obliterate(self) -> None:
        """Remove the stream and all its data and versions; its UUID cannot be reused."""
        self._loop().call(self._stream.obliterate)

    # ------------------------------------------------------------------ dunder
    def __repr__(self) -> str:
        s = self._stream
        return f"<Stream {s.uuid} collection={s.collection!r} name={s.name!r}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Stream):
            return self._stream == other.async_stream
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._stream)
