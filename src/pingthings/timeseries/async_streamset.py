"""``AsyncStreamSet``: a group of streams queried together, every call a coroutine.

Every multi-stream method fans out in one anyio task group; each server call holds a token of
the client's CapacityLimiter, so ``concurrency_limit`` bounds the calls in flight. The first
failure cancels the remaining calls and is raised with the failing stream's UUID in its
message. Results come back in the set's order: tables as a ``list`` (one per stream), scalars
as a ``dict`` keyed by UUID.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, cast, overload
from uuid import UUID

import numpy as np
import pyarrow as pa

from pingthings.timeseries import _data_calls as dc
from pingthings.timeseries._align import align
from pingthings.timeseries._fanout import gather
from pingthings.timeseries._filters import Matcher, check_filter_args, stream_matches
from pingthings.timeseries._progress import progress_bar
from pingthings.timeseries._results import Point
from pingthings.timeseries._timeargs import to_ns, to_version, to_width, window_kind
from pingthings.timeseries.async_stream import AsyncStream
from pingthings.timeseries.constants import MAXIMUM_TIME, MINIMUM_TIME, STAT_F32_SCHEMA

VersionsArg = Mapping[UUID | str, int] | Sequence[int] | None


def _as_uuid(key: UUID | str, what: str = "key") -> UUID:
    """A UUID from a UUID, its string, or a stream object (anything with a ``uuid`` UUID)."""
    if isinstance(key, UUID):
        return key
    if isinstance(getattr(key, "uuid", None), UUID):
        return cast(UUID, getattr(key, "uuid"))  # noqa: B009 - key is a stream object here
    if isinstance(key, str):
        try:
            return UUID(key)
        except ValueError:
            raise ValueError(f"{what} {key!r} is not a UUID") from None
    raise TypeError(f"{what} must be a UUID or a UUID string, got {type(key).__name__}")


class AsyncStreamSet:
    """An ordered set of :class:`AsyncStream` objects queried together.

    Parameters
    ----------
    streams
        The streams, in the order results are returned. Duplicates (same UUID) are dropped.
    """

    def __init__(self, streams: Iterable[AsyncStream] = ()) -> None:
        unique: dict[UUID, AsyncStream] = {}
        for s in streams:
            if not isinstance(s, AsyncStream):
                raise TypeError(f"AsyncStreamSet holds AsyncStream objects, got {type(s).__name__}")
            unique.setdefault(s.uuid, s)
        self._streams: list[AsyncStream] = list(unique.values())
        self._by_uuid = unique
        self._pinned: dict[UUID, int] = {}

    # ------------------------------------------------------------------ container
    @property
    def streams(self) -> list[AsyncStream]:
        """The streams, in order (a copy)."""
        return list(self._streams)

    @property
    def uuids(self) -> list[UUID]:
        """The streams' UUIDs, in order."""
        return [s.uuid for s in self._streams]

    def __len__(self) -> int:
        return len(self._streams)

    def __iter__(self) -> Iterator[AsyncStream]:
        return iter(self._streams)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, AsyncStream):
            return item.uuid in self._by_uuid
        try:
            return _as_uuid(item) in self._by_uuid  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False

    @overload
    def __getitem__(self, key: int) -> AsyncStream: ...
    @overload
    def __getitem__(self, key: UUID | str) -> AsyncStream: ...
    def __getitem__(self, key: int | UUID | str) -> AsyncStream:
        """The stream at a position, or with a UUID (``UUID`` or its string)."""
        if isinstance(key, int) and not isinstance(key, bool):
            return self._streams[key]
        uuid = _as_uuid(key)  # type: ignore[arg-type]  # (bool was ruled out above)
        try:
            return self._by_uuid[uuid]
        except KeyError:
            raise KeyError(f"stream {uuid} is not in this set") from None

    def __repr__(self) -> str:
        return f"<AsyncStreamSet({len(self._streams)} streams)>"

    def _subset(self, streams: list[AsyncStream]) -> AsyncStreamSet:
        out = AsyncStreamSet(streams)
        out._pinned = {u: v for u, v in self._pinned.items() if u in out._by_uuid}
        return out

    # ------------------------------------------------------------------ versions
    @property
    def pinned_versions(self) -> dict[UUID, int]:
        """The pinned version of each pinned stream (a copy; empty when nothing is pinned)."""
        return dict(self._pinned)

    async def pin_versions(self, versions: Mapping[UUID | str, int] | None = None) -> AsyncStreamSet:
        """Pin streams to data versions; later reads use them unless given other versions.

        Parameters
        ----------
        versions
            ``{uuid: version}`` for some or all streams. None pins every stream to its current
            latest version (a consistent snapshot for the queries that follow).

        Returns
        -------
        AsyncStreamSet
            This set (pinning changes it in place).
        """
        if versions is None:
            self._pinned = await self.get_latest_version()
            return self
        if not isinstance(versions, Mapping):
            raise TypeError(f"versions must be a dict of uuid -> version, got {type(versions).__name__}")
        pinned = {}
        for key, version in versions.items():
            uuid = _as_uuid(key, "versions key")
            if uuid not in self._by_uuid:
                raise KeyError(f"cannot pin stream {uuid}: it is not in this set")
            pinned[uuid] = to_version(version, f"version of {uuid}")
        self._pinned.update(pinned)
        return self

    def _versions(self, versions: VersionsArg) -> list[int]:
        """Per-stream versions: the argument if given, else the pinned version, else 0 (latest)."""
        if versions is None:
            return [self._pinned.get(s.uuid, 0) for s in self._streams]
        if isinstance(versions, Mapping):
            given = {_as_uuid(k, "versions key"): to_version(v) for k, v in versions.items()}
            unknown = [u for u in given if u not in self._by_uuid]
            if unknown:
                raise KeyError(f"versions given for streams not in this set: {unknown}")
            return [given.get(s.uuid, self._pinned.get(s.uuid, 0)) for s in self._streams]
        seq = list(versions)
        if len(seq) != len(self._streams):
            raise ValueError(f"versions has {len(seq)} entries but the set has {len(self._streams)} streams")
        return [to_version(v) for v in seq]

    def _workers(self) -> int | None:
        """Calls a fan-out runs at once: the client's concurrency limit (the rest wait their turn)."""
        return int(self._streams[0].client.limiter.total_tokens) if self._streams else None

    async def _fan(self, name: str, calls: list[tuple[Any, ...]], progress: bool) -> list[Any]:
        labels = [str(s.uuid) for s in self._streams]
        with progress_bar(len(calls), progress, name) as bar:
            return await gather(calls, labels, bar, workers=self._workers())

    async def get_latest_version(self, progress: bool = False) -> dict[UUID, int]:
        """The current data version of every stream."""
        res = await self._fan("versions", [(s.get_latest_version,) for s in self._streams], progress)
        return dict(zip(self.uuids, res, strict=True))

    async def get_version_at_time(self, time: Any, progress: bool = False) -> dict[UUID, int]:
        """The data version of every stream that was current at wall-clock ``time``."""
        t = to_ns(time, "time")
        res = await self._fan("versions", [(s.get_version_at_time, t) for s in self._streams], progress)
        return dict(zip(self.uuids, res, strict=True))

    # ------------------------------------------------------------------ metadata
    async def refresh_metadata(self, progress: bool = False) -> None:
        """Reload every stream's metadata."""
        await self._fan("metadata", [(s.refresh_metadata,) for s in self._streams], progress)

    async def filter(
        self,
        collection: Matcher | None = None,
        name: Matcher | None = None,
        unit: Matcher | None = None,
        tags: Mapping[str, Matcher | None] | None = None,
        annotations: Mapping[str, Any] | None = None,
    ) -> AsyncStreamSet:
        """A new set with the streams whose metadata matches every given criterion.

        A ``str`` must equal the value exactly; a compiled regex (``re.compile``) must be found
        in it (``re.search``). ``tags``/``annotations`` map keys to such matchers (``None``: the
        key only has to be present). Streams whose metadata is unknown are loaded first. Pinned
        versions carry over.
        """
        check_filter_args(collection, name, unit, tags, annotations)
        missing = [s for s in self._streams if not s.has_metadata]
        if missing:
            labels = [str(s.uuid) for s in missing]
            await gather([(s.refresh_metadata,) for s in missing], labels, workers=self._workers())
        kept = [
            s
            for s in self._streams
            if stream_matches(
                s.collection, s.tags(), s.annotations(), collection, name, unit, tags, annotations
            )
        ]
        return self._subset(kept)

    # ------------------------------------------------------------------ reads
    async def raw_values(
        self, start: Any, end: Any, versions: VersionsArg = None, progress: bool = False
    ) -> list[pa.Table]:
        """Every stream's points in ``[start, end)``: one ``(time, value)`` Table per stream, in order."""
        s, e, vs = to_ns(start, "start"), to_ns(end, "end"), self._versions(versions)
        calls = [(st.raw_values, s, e, v) for st, v in zip(self._streams, vs, strict=True)]
        return await self._fan("raw values", calls, progress)

    async def raw_values_aligned(
        self,
        start: Any,
        end: Any,
        sampling_frequency: float | None = None,
        versions: VersionsArg = None,
    ) -> pa.Table:
        """All streams' points joined on time into one Table.

        Uses the server's ArrowMultiValues when it has it, and the same join on the client
        otherwise.

        Parameters
        ----------
        start, end
            The time range ``[start, end)``.
        sampling_frequency
            In Hz. When given, each time snaps to the nearest multiple of ``1e9 / frequency`` ns
            (ties up; grid anchored at the epoch) and each stream keeps one point per slot.
        versions
            Per-stream versions (default: pinned, else latest).

        Returns
        -------
        pyarrow.Table
            ``time`` plus one float64 column per stream named ``str(uuid)``; NaN where a
            stream has no point at that time. Sorted by time.
        """
        s, e, vs = to_ns(start, "start"), to_ns(end, "end"), self._versions(versions)
        period = 0
        if sampling_frequency is not None:
            if isinstance(sampling_frequency, bool) or not isinstance(sampling_frequency, int | float):
                raise TypeError("sampling_frequency must be a number of Hz")
            if not sampling_frequency > 0 or not np.isfinite(sampling_frequency):
                raise ValueError(f"sampling_frequency must be positive (Hz), not {sampling_frequency}")
            period = int(1e9 / sampling_frequency)
            if period < 1:
                raise ValueError(f"sampling_frequency {sampling_frequency} Hz is above 1 GHz (1 ns)")
        if not self._streams:
            raise ValueError("raw_values_aligned needs at least one stream")
        client = self._streams[0].client
        if dc.use_arrow(client):
            return await dc.multi_values(client, self.uuids, vs, s, e, period)
        query_start = max(MINIMUM_TIME, s - period) if period else s
        tables = await self.raw_values(query_start, e, vs)
        series = [
            (
                t.column("time").combine_chunks().view(pa.int64()).to_numpy(),
                t.column("value").combine_chunks().to_numpy(),
            )
            if t.num_rows
            else (np.empty(0, np.int64), np.empty(0, np.float64))
            for t in tables
        ]
        return align(self.uuids, series, s, e, period)

    async def aligned_windows(
        self,
        start: Any,
        end: Any,
        point_width: int,
        versions: VersionsArg = None,
        single_stream_schema: pa.Schema | None = STAT_F32_SCHEMA,
        progress: bool = False,
    ) -> list[pa.Table]:
        """:meth:`AsyncStream.aligned_windows` for every stream; one Table per stream, in order.

        ``single_stream_schema`` is the schema each table is cast to (default ``STAT_F32_SCHEMA``;
        ``None`` keeps the server's float64). A stream without data in the range gets an empty
        table of that schema (never ``None``).
        """
        s, e, vs = to_ns(start, "start"), to_ns(end, "end"), self._versions(versions)
        pairs = zip(self._streams, vs, strict=True)
        calls = [(st.aligned_windows, s, e, point_width, v, single_stream_schema) for st, v in pairs]
        return await self._fan("aligned windows", calls, progress)

    async def precise_windows(
        self,
        start: Any,
        end: Any,
        width: int,
        versions: VersionsArg = None,
        single_stream_schema: pa.Schema | None = STAT_F32_SCHEMA,
        progress: bool = False,
    ) -> list[pa.Table]:
        """:meth:`AsyncStream.precise_windows` for every stream; one Table per stream, in order.

        ``single_stream_schema`` as for :meth:`aligned_windows`.
        """
        s, e, vs = to_ns(start, "start"), to_ns(end, "end"), self._versions(versions)
        w = to_width(width)
        calls = [
            (st.precise_windows, s, e, w, v, single_stream_schema)
            for st, v in zip(self._streams, vs, strict=True)
        ]
        return await self._fan("precise windows", calls, progress)

    async def windowed_values(
        self,
        start: Any,
        end: Any,
        width: int,
        versions: VersionsArg = None,
        single_stream_schema: pa.Schema | None = STAT_F32_SCHEMA,
        progress: bool = False,
    ) -> list[pa.Table]:
        """Statistics per stream: aligned windows when ``width`` is a ``PW[i]`` point width or a
        power-of-two number of ns, precise windows of ``width`` ns otherwise."""
        kind, arg = window_kind(width)
        if kind == "aligned":
            return await self.aligned_windows(start, end, arg, versions, single_stream_schema, progress)
        return await self.precise_windows(start, end, arg, versions, single_stream_schema, progress)

    async def count(
        self,
        start: Any = MINIMUM_TIME,
        end: Any = MAXIMUM_TIME,
        versions: VersionsArg = None,
        precise: bool = False,
        progress: bool = False,
    ) -> dict[UUID, int]:
        """Every stream's point count in ``[start, end)`` (see :meth:`AsyncStream.count`)."""
        s, e, vs = to_ns(start, "start"), to_ns(end, "end"), self._versions(versions)
        calls = [(st.count, s, e, v, precise) for st, v in zip(self._streams, vs, strict=True)]
        return dict(zip(self.uuids, await self._fan("count", calls, progress), strict=True))

    async def earliest(
        self, versions: VersionsArg = None, progress: bool = False
    ) -> dict[UUID, Point | None]:
        """Every stream's first point (None for an empty stream)."""
        vs = self._versions(versions)
        calls = [(st.earliest, v) for st, v in zip(self._streams, vs, strict=True)]
        return dict(zip(self.uuids, await self._fan("earliest", calls, progress), strict=True))

    async def latest(self, versions: VersionsArg = None, progress: bool = False) -> dict[UUID, Point | None]:
        """Every stream's last point (None for an empty stream)."""
        vs = self._versions(versions)
        calls = [(st.latest, v) for st, v in zip(self._streams, vs, strict=True)]
        return dict(zip(self.uuids, await self._fan("latest", calls, progress), strict=True))

    async def changes(
        self,
        from_version_map: Mapping[UUID | str, int],
        to_version_map: Mapping[UUID | str, int] | None = None,
        resolution: int = 0,
        progress: bool = False,
    ) -> dict[UUID, list[dict[str, int]]]:
        """Changed ranges per stream between two versions.

        Parameters
        ----------
        from_version_map
            ``{uuid: version}``; changes made *after* that version (missing streams: 0, i.e. since
            creation).
        to_version_map
            ``{uuid: version}``, inclusive (missing streams: pinned version, else latest).
        resolution
            log2 ns of the coarsest range the server may report.
        """
        if not isinstance(from_version_map, Mapping):
            raise TypeError("from_version_map must be a dict of uuid -> version")
        frm = {_as_uuid(k, "from_version_map key"): to_version(v) for k, v in from_version_map.items()}
        unknown = [u for u in frm if u not in self._by_uuid]
        if unknown:
            raise KeyError(f"from_version_map names streams not in this set: {unknown}")
        to = self._versions(to_version_map)
        calls = [
            (st.changes, frm.get(st.uuid, 0), v, resolution) for st, v in zip(self._streams, to, strict=True)
        ]
        return dict(zip(self.uuids, await self._fan("changes", calls, progress), strict=True))

    # ------------------------------------------------------------------ writes
    async def insert(
        self, data: Mapping[UUID | str, Any], merge: str = "never", progress: bool = False
    ) -> dict[UUID, int]:
        """Insert into several streams at once.

        Parameters
        ----------
        data
            ``{uuid: points}``; each value is anything :meth:`AsyncStream.insert` accepts.
            Every key must name a stream of this set.
        merge
            The merge policy for every stream (``never``, ``equal``, ``retain``, ``replace``).

        Returns
        -------
        dict
            ``{uuid: version after the insert}`` for the streams written.
        """
        from pingthings.timeseries._insert import merge_policy_value

        if not isinstance(data, Mapping):
            raise TypeError(f"data must be a dict of uuid -> points, got {type(data).__name__}")
        merge_policy_value(merge)
        targets = []
        for key, points in data.items():
            uuid = _as_uuid(key, "data key")
            if uuid not in self._by_uuid:
                raise KeyError(f"cannot insert into stream {uuid}: it is not in this set")
            targets.append((self._by_uuid[uuid], points))
        labels = [str(st.uuid) for st, _ in targets]
        with progress_bar(len(targets), progress, "insert") as bar:
            calls = [(st.insert, pts, merge) for st, pts in targets]
            res = await gather(calls, labels, bar, workers=self._workers())
        return dict(zip([st.uuid for st, _ in targets], res, strict=True))

    async def flush(self, progress: bool = False) -> None:
        """Flush every stream."""
        await self._fan("flush", [(s.flush,) for s in self._streams], progress)
