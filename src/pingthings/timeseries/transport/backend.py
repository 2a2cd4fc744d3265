"""The running event loop's anyio backend, looked up once per connection instead of once per use.

``anyio.current_time()``, ``anyio.CancelScope()``, ``anyio.move_on_after()`` and
``anyio.lowlevel.checkpoint_if_cancelled()`` each ask sniffio which library runs the current task
before doing their work; a small call made eight such look-ups. A connection lives on one event
loop, so its calls take these from the backend found when it was opened. The backend class comes
from anyio's private ``get_async_backend`` (stable across anyio 4, whose next major the dependency
caps); its methods are anyio's public ``AsyncBackend`` interface.
"""

from __future__ import annotations

from anyio._core._eventloop import get_async_backend
from anyio.abc import AsyncBackend

__all__ = ["AsyncBackend", "current_backend"]


def current_backend() -> type[AsyncBackend]:
    """The anyio backend class of the event loop running the current task."""
    return get_async_backend()

