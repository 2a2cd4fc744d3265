"""``StreamSet``: the synchronous face of :class:`~pingthings.timeseries.async_streamset.AsyncStreamSet`.

The work is done by an :class:`AsyncStreamSet` over the same streams, run on the client's event
loop; results are the same (tables as a list in stream order, scalars as a dict keyed by UUID).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any
from uuid import UUID

import numpy as np
import pyarrow as pa

from pingthings.timeseries._results import Point
from pingthings.timeseries.async_streamset import AsyncStreamSet, VersionsArg
from pingthings.timeseries.constants import MAXIMUM_TIME, MINIMUM_TIME, STAT_F32_SCHEMA
from pingthings.timeseries.export import DEFAULT_MAX_POINTS
from pingthings.timeseries.live import DEFAULT_RECONNECT_TIMEOUT, LiveBatch
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
        *,
        start: Any = None,
        end: Any = None,
    ) -> StreamSet:
        """A new set with the streams whose metadata matches every given criterion.

        Optionally with a time range; see :meth:`AsyncStreamSet.filter`.
        """
        if not self._streams:
            # Nothing to look up: the async filter finishes without suspending, so it needs no loop.
            coro = AsyncStreamSet([]).filter(collection, name, unit, tags, annotations, start=start, end=end)
            try:
                coro.send(None)
            except StopIteration as done:
                return StreamSet._wrap([], done.value)
            coro.close()
            raise RuntimeError("filter on an empty StreamSet unexpectedly waited")
        aset = self._loop().call(
            self._async.filter, collection, name, unit, tags, annotations, start=start, end=end
        )
        return StreamSet._wrap(self._streams, aset)

    @property
    def time_range(self) -> tuple[int | None, int | None]:
        """``(start, end)`` set by :meth:`filter` (``None`` where not set); ns, ``[start, end)``.

        See :meth:`filter`.
        """
        return self._async.time_range

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

    def current(self, versions: VersionsArg = None, progress: bool = False) -> dict[UUID, Point | None]:
        """Every stream's last point before now (None where there is none).

        See :meth:`AsyncStreamSet.current`.
        """
        return self._call("current", versions, progress)

    def changes(
        self,
        from_version_map: Mapping[UUID | str, int],
        to_version_map: Mapping[UUID | str, int] | None = None,
        resolution: int = 0,
        progress: bool = False,
    ) -> dict[UUID, list[dict[str, int]]]:
        """Changed ranges per stream between two versions."""
        return self._call("changes", from_version_map, to_version_map, resolution, progress)

    # ------------------------------------------------------------------ live data
    def subscribe(self, reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT) -> Iterator[LiveBatch]:
        """Watch the points inserted into every stream of the set from now on.

        Leaving the ``for`` loop or closing the iterator ends the subscription; see
        :meth:`AsyncStreamSet.subscribe`.
        """
        return self._loop().iterate(self._async.subscribe(reconnect_timeout))

    # ------------------------------------------------------------------ analysis
    def stream_labels(self, labels: str = "uuid") -> list[str]:
        """The column label of each stream: ``"uuid"`` (its UUID string) or ``"name"`` (``collection/name``,
        loading metadata where it is unknown).

        See :meth:`AsyncStreamSet.stream_labels`.
        """
        return self._loop().call(self._async.stream_labels, labels)

    def to_arrow(
        self,
        start: Any = None,
        end: Any = None,
        *,
        form: str = "wide",
        width: int | None = None,
        labels: str = "uuid",
        versions: VersionsArg = None,
        sampling_frequency: float | None = None,
    ) -> pa.Table:
        """Every stream's data in ``[start, end)`` as one Table.

        See :meth:`AsyncStreamSet.to_arrow`.
        """
        return self._loop().call(
            partial(
                self._async.to_arrow,
                start,
                end,
                form=form,
                width=width,
                labels=labels,
                versions=versions,
                sampling_frequency=sampling_frequency,
            )
        )

    def to_pandas(
        self,
        start: Any = None,
        end: Any = None,
        *,
        form: str = "wide",
        width: int | None = None,
        labels: str = "uuid",
        versions: VersionsArg = None,
        sampling_frequency: float | None = None,
    ) -> Any:
        """:meth:`to_arrow` as a pandas DataFrame (needs ``pip install 'pingthings[pandas]'``).

        See :meth:`AsyncStreamSet.to_pandas`.
        """
        return self._loop().call(
            partial(
                self._async.to_pandas,
                start,
                end,
                form=form,
                width=width,
                labels=labels,
                versions=versions,
                sampling_frequency=sampling_frequency,
            )
        )

    def to_dataframe(
        self,
        start: Any = None,
        end: Any = None,
        *,
        form: str = "wide",
        width: int | None = None,
        labels: str = "uuid",
        versions: VersionsArg = None,
        sampling_frequency: float | None = None,
    ) -> Any:
        """The same as :meth:`to_pandas` (the name btrdb-python uses)."""
        return self._loop().call(
            partial(
                self._async.to_dataframe,
                start,
                end,
                form=form,
                width=width,
                labels=labels,
                versions=versions,
                sampling_frequency=sampling_frequency,
            )
        )

    def to_polars(
        self,
        start: Any = None,
        end: Any = None,
        *,
        form: str = "wide",
        width: int | None = None,
        labels: str = "uuid",
        versions: VersionsArg = None,
        sampling_frequency: float | None = None,
    ) -> Any:
        """:meth:`to_arrow` as a polars DataFrame (needs ``pip install 'pingthings[polars]'``).

        See :meth:`AsyncStreamSet.to_polars`.
        """
        return self._loop().call(
            partial(
                self._async.to_polars,
                start,
                end,
                form=form,
                width=width,
                labels=labels,
                versions=versions,
                sampling_frequency=sampling_frequency,
            )
        )

    def to_numpy(
        self,
        start: Any = None,
        end: Any = None,
        *,
        versions: VersionsArg = None,
        sampling_frequency: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw points joined on time as numpy arrays.

        See :meth:`AsyncStreamSet.to_numpy`.
        """
        return self._loop().call(
            partial(
                self._async.to_numpy, start, end, versions=versions, sampling_frequency=sampling_frequency
            )
        )

    def to_csv(
        self,
        path: Any,
        start: Any = None,
        end: Any = None,
        *,
        form: str = "wide",
        width: int | None = None,
        labels: str = "uuid",
        versions: VersionsArg = None,
        max_points: int = DEFAULT_MAX_POINTS,
        generate_csv: bool = False,
    ) -> int:
        """Write the streams' data in ``[start, end)`` to a CSV file, with bounded memory.

        See :meth:`AsyncStreamSet.to_csv`.
        """
        return self._loop().call(
            partial(
                self._async.to_csv,
                path,
                start,
                end,
                form=form,
                width=width,
                labels=labels,
                versions=versions,
                max_points=max_points,
                generate_csv=generate_csv,
            )
        )

    def to_parquet(
        self,
        path: Any,
        start: Any = None,
        end: Any = None,
        *,
        form: str = "wide",
        width: int | None = None,
        labels: str = "uuid",
        versions: VersionsArg = None,
        max_points: int = DEFAULT_MAX_POINTS,
    ) -> int:
        """Write the streams' data in ``[start, end)`` to a Parquet file, one row group per slice of about
        ``max_points`` points (bounded memory); returns the rows written.

        See :meth:`AsyncStreamSet.to_parquet`.
        """
        return self._loop().call(
            partial(
                self._async.to_parquet,
                path,
                start,
                end,
                form=form,
                width=width,
                labels=labels,
                versions=versions,
                max_points=max_points,
            )
        )

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
