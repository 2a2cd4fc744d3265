"""``AsyncStreamSet``: a group of streams queried together, every call a coroutine."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from uuid import UUID

from pingthings.timeseries.async_stream import AsyncStream


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
        self._pinned: dict[UUID, int] = {}

    @property
    def streams(self) -> list[AsyncStream]:
        """The streams, in order (a copy)."""
        return list(self._streams)

    def __len__(self) -> int:
        return len(self._streams)

    def __iter__(self) -> Iterator[AsyncStream]:
        return iter(self._streams)

    def __repr__(self) -> str:
        return f"<AsyncStreamSet({len(self._streams)} streams)>"
