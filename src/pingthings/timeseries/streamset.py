"""``StreamSet``: the synchronous face of :class:`~pingthings.timeseries.async_streamset.AsyncStreamSet`.

The work is done by an :class:`AsyncStreamSet` over the same streams, run on the client's event
loop; results are the same (tables as a list in stream order, scalars as a dict keyed by UUID).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

import pyarrow as pa

from pingthings.timeseries._results import Point
from pingthings.timeseries.async_streamset import AsyncStreamSet, VersionsArg
from pingthings.timeseries.constants import MAXIMUM_TIME, MINIMUM_TIME, STAT_F32_SCHEMA
from pingthings.timeseries.stream import Stream

if TYPE_CHECKING:
    from pingthings.timeseries.event_loop import ClientEventLoop

__all__ = ["StreamSet"]


class StreamSet:
    """An ordered set of :class:`Stream` objects queried together.

    Parameters
    ----------
    streams
        The streams, in the order results are returned. Duplicates (same UUID) are dropped.
        All streams must belong to the same client.
    """

    def __init__(self, streams: Iterable[Stream] = ()) -> None:
        unique: dict[UUID, Stream] = {}
        for s in streams:
            if not isinstance(s, Stream):
                raise TypeError(f"StreamSet holds Stream objects, got {type(s).__name__}")
            unique.setdefault(s.uuid, s)
        self._streams: list[Stream] = list(unique.values())
        conns = {id(s.conn) for s in self._streams}
        if len(conns) > 1:
            raise ValueError("all streams of a StreamSet must come from the same client")
        self._async = AsyncStreamSet([s.async_stream for s in self._streams])

    @classmethod
    def _wrap(cls, template: list[Stream], aset: AsyncStreamSet) -> StreamSet:
        """A StreamSet over ``aset`` reusing the Stream objects of ``template``."""
        by_uuid = {s.uuid: s for s in template}
        out = cls([by_uuid[u] for u in aset.uuids])
        out._async = aset
        return out

    # ------------------------------------------------------------------ container
    @property
    def streams(self) -> list[Stream]:
        """The streams, in order (a copy)."""
        return list(self._streams)

    @property
    def async_streamset(self) -> AsyncStreamSet:
        """The :class:`AsyncStreamSet` doing the work."""
        return self._async

    @property
    def uuids(self) -> list[UUID]:
        """The streams' UUIDs, in order."""
        return [s.uuid for s in self._streams]

    def __len__(self) -> int:
        return len(self._streams)

    def __iter__(self) -> Iterator[Stream]:
        return iter(self._streams)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, Stream):
            item = item.uuid
        return item in self._async

    def __getitem__(self, key: int | UUID | str) -> Stream:
        """The stream at a position, or with a UUID (``UUID`` or its string)."""
        if isinstance(key, int) and not isinstance(key, bool):
            return self._streams[key]
        uuid = self._async[key].uuid
        return next(s for s in self._streams if s.uuid == uuid)

    def __repr__(self) -> str:
        return f"<StreamSet({len(self._streams)} streams)>"

    def _loop(self) -> ClientEventLoop:
        if not self._streams:
            raise ValueError("this StreamSet is empty")
        return self._streams[0].conn.get_event_loop()

    def _call(self, method: str, *args: Any) -> Any:
        if not self._streams:
            return self._empty_result(method)
        return self._loop().call(getattr(self._async, method), *args)

    @staticmethod
    def _empty_result(method: str) -> Any:
        if method in ("raw_values", "aligned_windows", "precise_windows", "windowed_values"):
            return []
        if method in ("flush", "refresh_metadata"):
            return None
        return {}

    # ------------------------------------------------------------------ versions
    @property
    def pinned_versions(self) -> dict[UUID, int]:
        """The pinned version of each pinned stream (a copy; empty when nothing is pinned)."""
        return self._async.pinned_versions

    def pin_versions(self, versions: Mapping[UUID | str, int] | None = None) -> StreamSet:
        """Pin streams to data versions; later reads use them unless given other versions.

        ``versions`` None pins every stream to its current latest version; returns this set.
        """
        if self._streams:
            self._loop().call(self._async.pin_versions, versions)
        return self

    def get_latest_version(self, progress: bool = False) -> dict[UUID, int]:
        """The current data version of every stream."""
        return self._call("get_latest_version", progress)

    def get_version_at_time(self, time: Any, progress: bool = False) -> dict[UUID, int]:
        """The data version of every stream that was current at wall-clock ``time``."""
        return self._call("get_version_at_time", time, progress)

    # ------------------------------------------------------------------ metadata
    def refresh_metadata(self, progress: bool = False) -> None:
        """Reload every stream's metadata."""
        self._call("refresh_metadata", progress)

    def filter(
        self,
        collection: str | re.Pattern[str] | None = None,
        name: str | re.Pattern[str] | None = None,
        unit: str | re.Pattern[str] | None = None,
        tags: Mapping[str, str | re.Pattern[str] | None] | None = None,
        annotations: Mapping[str, Any] | None = None,
    ) -> StreamSet:
        """A new set with the streams whose metadata matches every given criterion.

        See :meth:`AsyncStreamSet.filter`.
        """
        if not self._streams:
            return StreamSet([])
        aset = self._loop().call(self._async.filter, collection, name, unit, tags, annotations)
        return StreamSet._wrap(self._streams, aset)

    # ------------------------------------------------------------------ reads
    def raw_values(
        self, start: Any, end: Any, versions: VersionsArg = None, progress: bool = False
    ) -> list[pa.Table]:
        """Every stream's points in ``[start, end)``: one ``(time, value)`` Table per stream, in order."""
        return self._call("raw_values", start, end, versions, progress)

    def raw_values_aligned(
        self, start: Any, end: Any, sampling_frequency: float | None = None, versions: VersionsArg = None
    ) -> pa.Table:
        """All streams' points joined on time into one Table.

        See :meth:`AsyncStreamSet.raw_values_aligned`.
        """
        if not self._streams:
            raise ValueError("raw_values_aligned needs at least one stream")
        return self._call("raw_values_aligned", start, end, sampling_frequency, versions)

    def aligned_windows(
        self,
        start: Any,
        end: Any,
        point_width: int,
        versions: VersionsArg = None,
        single_stream_schema: pa.Schema | None = STAT_F32_SCHEMA,
        progress: bool = False,
    ) -> list[pa.Table]:
        """:meth:`Stream.aligned_windows` for every stream; one Table per stream, in order."""
        return self._call(
            "aligned_windows", start, end, point_width, versions, single_stream_schema, progress
        )

    def precise_windows(
        self,
        start: Any,
        end: Any,
        width: int,
        versions: VersionsArg = None,
        single_stream_schema: pa.Schema | None = STAT_F32_SCHEMA,
        progress: bool = False,
    ) -> list[pa.Table]:
        """:meth:`Stream.precise_windows` for every stream; one Table per stream, in order."""
        return self._call("precise_windows", start, end, width, versions, single_stream_schema, progress)

    def windowed_values(
        self,
        start: Any,
        end: Any,
        width: int,
        versions: VersionsArg = None,
        single_stream_schema: pa.Schema | None = STAT_F32_SCHEMA,
        progress: bool = False,
    ) -> list[pa.Table]:
        """Statistics per stream: aligned windows when ``width`` is a ``PW[i]`` point width or a power-of-two
        number of ns, precise windows of ``width`` ns otherwise.
        """
        return self._call("windowed_values", start, end, width, versions, single_stream_schema, progress)

    def count(
        self,
        start: Any = MINIMUM_TIME,
        end: Any = MAXIMUM_TIME,
        versions: VersionsArg = None,
        precise: bool = False,
        progress: bool = False,
    ) -> dict[UUID, int]:
        """Every stream's point count in ``[start, end)`` (see :meth:`Stream.count`)."""
        return self._call("count", start, end, versions, precise, progress)

    def earliest(self, versions: VersionsArg = None, progress: bool = False) -> dict[UUID, Point | None]:
        """Every stream's first point (None for an empty stream)."""
        return self._call("earliest", versions, progress)

    def latest(self, versions: VersionsArg = None, progress: bool = False) -> dict[UUID, Point | None]:
        """Every stream's last point (None for an empty stream)."""
        return self._call("latest", versions, progress)

    def changes(
        self,
        from_version_map: Mapping[UUID | str, int],
        to_version_map: Mapping[UUID | str, int] | None = None,
        resolution: int = 0,
        progress: bool = False,
    ) -> dict[UUID, list[dict[str, int]]]:
        """Changed ranges per stream between two versions."""
        return self._call("changes", from_version_map, to_version_map, resolution, progress)

    # ------------------------------------------------------------------ writes
    def insert(
        self, data: Mapping[UUID | str, Any], merge: str = "never", progress: bool = False
    ) -> dict[UUID, int]:
        """Insert into several streams at once.

        ``data`` maps UUIDs to points; returns ``{uuid: version}``.
        """
        if not self._streams and data:
            raise KeyError("cannot insert into an empty StreamSet")
        return self._call("insert", data, merge, progress)

    def flush(self, progress: bool = False) -> None:
        """Flush every stream."""
        self._call("flush", progress)
