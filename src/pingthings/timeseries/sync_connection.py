"""What a synchronous stream needs from the client that made it.

:class:`~pingthings.timeseries.stream.Stream` and :class:`~pingthings.timeseries.streamset.StreamSet`
run their calls on the client's event loop against the client's async side. They depend on this
small interface rather than on :class:`~pingthings.timeseries.client.Client` itself, which imports
them: that keeps the module graph free of cycles. ``Client`` satisfies it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pingthings.timeseries.async_client import AsyncClient
    from pingthings.timeseries.event_loop import ClientEventLoop


class SyncConnection(Protocol):
    """A synchronous client: an async client and the event loop that runs its calls."""

    def get_async_client(self) -> AsyncClient:
        """The async client the synchronous calls drive."""
        ...

    def get_event_loop(self) -> ClientEventLoop:
        """The event loop the synchronous calls run on."""
        ...
