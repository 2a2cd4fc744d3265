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
from pingthings.timeseries import export, frames
from pingthings.timeseries._align import align
from pingthings.timeseries._fanout import gather
from pingthings.timeseries._filters import Matcher, check_filter_args, stream_matches
from pingthings.timeseries._multi_windows import multi_aligned_windows, offered
from pingthings.timeseries._progress import progress_bar
from pingthings.timeseries._results import Point
from pingthings.timeseries._timeargs import to_ns, to_point_width, to_version, to_width, window_kind
from pingthings.timeseries.async_stream import AsyncStream
from pingthings.timeseries.constants import MAXIMUM_TIME, MINIMUM_TIME, STAT_F32_SCHEMA
from pingthings.timeseries.live import DEFAULT_RECONNECT_TIMEOUT, Subscription
from pingthings.timeseries.utils.timez import currently_as_ns

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
        self._range: tuple[int | None, int | None] = (None, None)

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
        out._range = self._range
        return out

    @property
    def time_range(self) -> tuple[int | None, int | None]:
        """``(start, end)`` set by :meth:`filter` (``None`` where not set); ns, ``[start, end)``."""
        return self._range

    def _resolve_range(self, start: Any, end: Any) -> tuple[int, int]:
        """The arguments if given, else the range set by :meth:`filter`."""
        s = to_ns(start, "start") if start is not None else self._range[0]
        e = to_ns(end, "end") if end is not None else self._range[1]
        if s is None or e is None:
            raise ValueError("give start and end, or narrow the set first with filter(start=..., end=...)")
        return s, e

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
        *,
        start: Any = None,
        end: Any = None,
    ) -> AsyncStreamSet:
        """A new set with the streams whose metadata matches every given criterion.

        For ``collection``, ``name`` and ``unit`` a ``str`` must equal the value ignoring case
        (as in btrdb-python); a compiled regex (``re.compile``) must be found in it
        (``re.search``). ``tags``/``annotations`` map keys to such matchers, a ``str`` matching
        exactly (``None``: the key only has to be present). Streams whose metadata is unknown
        are loaded first. Pinned versions carry over.

        ``start``/``end`` set the time range ``[start, end)`` that the methods taking optional
        ``start``/``end`` use (:meth:`to_arrow`, :meth:`to_pandas`, :meth:`to_csv`, ...), and
        that :meth:`earliest`, :meth:`latest` and :meth:`current` look within. Either may be
        given alone; the other keeps its earlier value.
        """
        check_filter_args(collection, name, unit, tags, annotations)
        new_start = to_ns(start, "start") if start is not None else self._range[0]
        new_end = to_ns(end, "end") if end is not None else self._range[1]
        if new_start is not None and new_end is not None and new_start >= new_end:
            raise ValueError(f"filter start ({new_start}) must be before end ({new_end})")
        if all(v is None for v in (collection, name, unit, tags, annotations)):
            narrowed = self._subset(list(self._streams))
            narrowed._range = (new_start, new_end)
            return narrowed
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
        narrowed = self._subset(kept)
        narrowed._range = (new_start, new_end)
        return narrowed

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
        client = self._one_client()
        if client is not None and offered(client):
            pw = to_point_width(point_width)
            with progress_bar(len(vs), progress, "aligned windows") as bar:
                tables = await multi_aligned_windows(
                    client, self.uuids, vs, s, e, pw, single_stream_schema, bar
                )
            if tables is not None:
                return tables
        pairs = zip(self._streams, vs, strict=True)
        calls = [(st.aligned_windows, s, e, point_width, v, single_stream_schema) for st, v in pairs]
        return await self._fan("aligned windows", calls, progress)

    def _one_client(self) -> Any:
        """The client every stream talks through, or None (empty set, or several clients)."""
        if not self._streams:
            return None
        client = self._streams[0].client
        return client if all(st.client is client for st in self._streams) else None

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
        """Every stream's first point (None for an empty stream).

        After ``filter(start=..., end=...)`` only points inside that range count.
        """
        lo, hi = self._range
        if lo is None and hi is None:
            vs = self._versions(versions)
            calls = [(st.earliest, v) for st, v in zip(self._streams, vs, strict=True)]
            return dict(zip(self.uuids, await self._fan("earliest", calls, progress), strict=True))
        return await self._nearest_within(lo, hi, False, versions, progress, "earliest")

    async def latest(self, versions: VersionsArg = None, progress: bool = False) -> dict[UUID, Point | None]:
        """Every stream's last point (None for an empty stream).

        After ``filter(start=..., end=...)`` only points inside that range count.
        """
        lo, hi = self._range
        if lo is None and hi is None:
            vs = self._versions(versions)
            calls = [(st.latest, v) for st, v in zip(self._streams, vs, strict=True)]
            return dict(zip(self.uuids, await self._fan("latest", calls, progress), strict=True))
        return await self._nearest_within(lo, hi, True, versions, progress, "latest")

    async def current(self, versions: VersionsArg = None, progress: bool = False) -> dict[UUID, Point | None]:
        """Every stream's last point before now (None where there is none).

        Raises
        ------
        ValueError
            When a range set by ``filter(start=..., end=...)`` does not contain now.
        """
        now = currently_as_ns()
        lo, hi = self._range
        if (lo is not None and now < lo) or (hi is not None and now >= hi):
            raise ValueError("current(): now is outside the time range set by filter(start=..., end=...)")
        vs = self._versions(versions)
        calls = [(st.current, v) for st, v in zip(self._streams, vs, strict=True)]
        return dict(zip(self.uuids, await self._fan("current", calls, progress), strict=True))

    async def _nearest_within(
        self,
        lo: int | None,
        hi: int | None,
        backward: bool,
        versions: VersionsArg,
        progress: bool,
        label: str,
    ) -> dict[UUID, Point | None]:
        vs = self._versions(versions)
        if backward:
            calls = [
                (st.nearest, hi if hi is not None else MAXIMUM_TIME, v, True)
                for st, v in zip(self._streams, vs, strict=True)
            ]
        else:
            calls = [
                (st.nearest, lo if lo is not None else MINIMUM_TIME, v, False)
                for st, v in zip(self._streams, vs, strict=True)
            ]
        found = await self._fan(label, calls, progress)
        inside = [
            p if p is not None and (lo is None or p.time >= lo) and (hi is None or p.time < hi) else None
            for p in found
        ]
        return dict(zip(self.uuids, inside, strict=True))

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

    # ------------------------------------------------------------------ live data
    def subscribe(self, reconnect_timeout: float = DEFAULT_RECONNECT_TIMEOUT) -> Subscription:
        """Watch the points inserted into every stream of the set from now on.

        Use as ``async for uuid, table in streamset.subscribe(): ...``: each item is a
        :class:`~pingthings.timeseries.live.LiveBatch` (the stream's UUID and a pyarrow Table of
        one inserted batch), preferably inside ``async with`` so the call closes with the block.

        Parameters
        ----------
        reconnect_timeout
            Seconds to keep reconnecting after the connection dropped (0: raise at once). See
            :mod:`pingthings.timeseries.live` for what resuming guarantees.
        """
        return Subscription(self._streams, reconnect_timeout)

    # ------------------------------------------------------------------ analysis
    async def stream_labels(self, labels: str = "uuid") -> list[str]:
        """The column label of each stream: ``"uuid"`` (its UUID string) or ``"name"``
        (``collection/name``, loading metadata where it is unknown).

        Raises
        ------
        ValueError
            For another ``labels`` value, or when two streams would get the same name.
        """
        if labels == "uuid":
            return [str(u) for u in self.uuids]
        if labels != "name":
            raise ValueError(f"labels must be 'uuid' or 'name', not {labels!r}")
        missing = [s for s in self._streams if not s.has_metadata]
        if missing:
            await gather([(s.refresh_metadata,) for s in missing], [str(s.uuid) for s in missing])
        names = [f"{s.collection}/{s.name}" for s in self._streams]
        if len(set(names)) != len(names):
            raise ValueError("two streams share collection/name; use labels='uuid'")
        return names

    async def to_arrow(
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

        Parameters
        ----------
        start, end
            The time range (default: the range set by ``filter(start=..., end=...)``).
        form
            ``"wide"``: ``time`` plus one column per stream (raw points joined on time, NaN
            where a stream has no point; with ``width``, columns ``"<label>/<stat>"``).
            ``"long"``: ``time``, ``stream`` and the value columns, one row per point.
        width
            None for raw points; else statistics over windows of this width, as
            :meth:`windowed_values` (float64 statistics).
        labels
            Column/stream labels: ``"uuid"`` or ``"name"`` (``collection/name``).
        versions
            Per-stream versions (default: pinned, else latest).
        sampling_frequency
            Wide raw only: snap times to this rate (Hz), as :meth:`raw_values_aligned`.

        Returns
        -------
        pyarrow.Table
            The per-stream Tables combined without copying their value columns where Arrow
            allows it (see :mod:`pingthings.timeseries.frames`).
        """
        shape = frames.check_form(form)
        s, e = self._resolve_range(start, end)
        if sampling_frequency is not None and (shape == "long" or width is not None):
            raise ValueError("sampling_frequency applies to wide raw tables only (form='wide', width=None)")
        names = await self.stream_labels(labels)
        if width is not None:
            stats = await self.windowed_values(s, e, width, versions, None)
            return (
                frames.wide_stat_table(stats, names) if shape == "wide" else frames.long_table(stats, names)
            )
        if shape == "long":
            return frames.long_table(await self.raw_values(s, e, versions), names)
        if not self._streams:
            raise ValueError("this stream set is empty")
        return frames.rename_wide(await self.raw_values_aligned(s, e, sampling_frequency, versions), names)

    async def to_pandas(
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

        Wide frames are indexed by ``time`` (``datetime64[ns, UTC]``); long frames keep ``time``
        as a column. Value columns are not copied.
        """
        table = await self.to_arrow(
            start,
            end,
            form=form,
            width=width,
            labels=labels,
            versions=versions,
            sampling_frequency=sampling_frequency,
        )
        return frames.to_pandas(table, index="time" if form == "wide" else None)

    async def to_dataframe(
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
        return await self.to_pandas(
            start,
            end,
            form=form,
            width=width,
            labels=labels,
            versions=versions,
            sampling_frequency=sampling_frequency,
        )

    async def to_polars(
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
        """:meth:`to_arrow` as a polars DataFrame (needs ``pip install 'pingthings[polars]'``)."""
        table = await self.to_arrow(
            start,
            end,
            form=form,
            width=width,
            labels=labels,
            versions=versions,
            sampling_frequency=sampling_frequency,
        )
        return frames.to_polars(table)

    async def to_numpy(
        self,
        start: Any = None,
        end: Any = None,
        *,
        versions: VersionsArg = None,
        sampling_frequency: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Raw points joined on time as numpy arrays.

        Returns
        -------
        tuple
            ``(times, values)``: int64 ns times of shape ``(n,)`` and float64 values of shape
            ``(n, len(self))``, NaN where a stream has no point at that time.
        """
        table = await self.to_arrow(start, end, versions=versions, sampling_frequency=sampling_frequency)
        return frames.to_numpy(table)

    async def to_csv(
        self,
        path: Any,
        start: Any = None,
        end: Any = None,
        *,
        form: str = "wide",
        width: int | None = None,
        labels: str = "uuid",
        versions: VersionsArg = None,
        max_points: int = export.DEFAULT_MAX_POINTS,
        generate_csv: bool = False,
    ) -> int:
        """Write the streams' data in ``[start, end)`` to a CSV file, with bounded memory.

        Parameters
        ----------
        path
            A file path, or a binary file object.
        start, end, form, width, labels, versions
            As for :meth:`to_arrow`.
        max_points
            Points read (and held) at once, all streams together; the range is cut into
            slices of about that many points (see :mod:`pingthings.timeseries.export`).
        generate_csv
            Let the server make the CSV with its GenerateCSV RPC (its own layout: a
            ``Timestamp (ns)`` and a human-readable time column, then the streams; ``form``
            does not apply). Raises NotImplementedByServerError where the server lacks it.

        Returns
        -------
        int
            The data rows written (the header not counted).
        """
        s, e = self._resolve_range(start, end)
        if generate_csv:
            if not self._streams:
                raise ValueError("this stream set is empty")
            names = await self.stream_labels(labels)
            return await export.write_generated_csv(
                self, path, s, e, width=width, labels=names, versions=self._versions(versions)
            )
        return await export.write_csv(
            self, path, s, e, form=form, width=width, labels=labels, versions=versions, max_points=max_points
        )

    async def to_parquet(
        self,
        path: Any,
        start: Any = None,
        end: Any = None,
        *,
        form: str = "wide",
        width: int | None = None,
        labels: str = "uuid",
        versions: VersionsArg = None,
        max_points: int = export.DEFAULT_MAX_POINTS,
    ) -> int:
        """Write the streams' data in ``[start, end)`` to a Parquet file, one row group per
        slice of about ``max_points`` points (bounded memory); returns the rows written.

        Parameters as for :meth:`to_csv`.
        """
        s, e = self._resolve_range(start, end)
        return await export.write_parquet(
            self, path, s, e, form=form, width=width, labels=labels, versions=versions, max_points=max_points
        )

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
