"""``Stream``: the synchronous face of :class:`~pingthings.timeseries.async_stream.AsyncStream`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from pingthings.timeseries.async_stream import AsyncStream

if TYPE_CHECKING:
    from pingthings.timeseries.client import Client


class Stream:
    """A handle on one stream, used from ordinary (blocking) code.

    Every method runs the matching :class:`AsyncStream` coroutine on the client's event loop.

    Parameters
    ----------
    conn
        The synchronous :class:`~pingthings.timeseries.client.Client`.
    stream
        The async stream this object wraps.
    """

    def __init__(self, conn: Client, stream: AsyncStream) -> None:
        if not isinstance(stream, AsyncStream):
            raise TypeError(f"Stream wraps an AsyncStream, got {type(stream).__name__}")
        self._conn = conn
        self._stream = stream

    @property
    def conn(self) -> Client:
        """The synchronous client."""
        return self._conn

    @property
    def async_stream(self) -> AsyncStream:
        """The wrapped :class:`AsyncStream`."""
        return self._stream

    @property
    def uuid(self) -> UUID:
        """The stream's UUID."""
        return self._stream.uuid

    @property
    def collection(self) -> str | None:
        """The stream's collection."""
        return self._stream.collection

    @property
    def name(self) -> str | None:
        """The ``name`` tag."""
        return self._stream.name

    @property
    def unit(self) -> str | None:
        """The ``unit`` tag."""
        return self._stream.unit

    @property
    def property_version(self) -> int:
        """The metadata (property) version last seen."""
        return self._stream.property_version

    def tags(self) -> dict[str, str | None]:
        """A copy of the stream's tags."""
        return self._stream.tags()

    def annotations(self) -> dict[str, Any]:
        """A copy of the stream's annotations."""
        return self._stream.annotations()

    def __repr__(self) -> str:
        return f"<Stream {self.uuid} collection={self._stream.collection!r} name={self._stream.name!r}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Stream):
            return self._stream == other._stream
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._stream)
