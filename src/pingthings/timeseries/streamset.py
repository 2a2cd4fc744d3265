"""``StreamSet``: the synchronous face of :class:`~pingthings.timeseries.async_streamset.AsyncStreamSet`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from uuid import UUID

from pingthings.timeseries.stream import Stream


class StreamSet:
    """An ordered set of :class:`Stream` objects queried together.

    Parameters
    ----------
    streams
        The streams, in the order results are returned. Duplicates (same UUID) are dropped.
    """

    def __init__(self, streams: Iterable[Stream] = ()) -> None:
        unique: dict[UUID, Stream] = {}
        for s in streams:
            if not isinstance(s, Stream):
                raise TypeError(f"StreamSet holds Stream objects, got {type(s).__name__}")
            unique.setdefault(s.uuid, s)
        self._streams: list[Stream] = list(unique.values())

    @property
    def streams(self) -> list[Stream]:
        """The streams, in order (a copy)."""
        return list(self._streams)

    def __len__(self) -> int:
        return len(self._streams)

    def __iter__(self) -> Iterator[Stream]:
        return iter(self._streams)

    def __repr__(self) -> str:
        return f"<StreamSet({len(self._streams)} streams)>"
