"""The running event loop's anyio backend, looked up once per connection instead of once per use.

``anyio.current_time()``, ``anyio.CancelScope()``, ``anyio.move_on_after()`` and
``anyio.lowlevel.checkpoint_if_cancelled()`` each ask sniffio which library runs the current task
before doing their work; a small call made eight such look-ups. A connection lives on one event
loop, so its calls take these from the backend class found when it was opened: anyio's own
(``AsyncBackend``, whose methods are public; finding it uses anyio's private ``get_async_backend``).
When a future anyio lacks that function, :func:`current_backend` returns :class:`PublicBackend`,
anyio's public functions in the same shape (slower, never wrong), and reports the fallback
(:func:`pingthings.fastpaths.report_fallback`, name ``"backend-cache"``).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio
import anyio.lowlevel

from pingthings.fastpaths import report_fallback

_private_lookup: Callable[[], Any] | None
try:
    from anyio._core._eventloop import get_async_backend as _private_lookup
except ImportError:  # pragma: no cover - a future anyio
    _private_lookup = None

__all__ = ["Backend", "PublicBackend", "current_backend"]


class Backend(Protocol):
    """What a call takes from the event loop's backend (an anyio ``AsyncBackend`` class has it)."""

    def current_time(self) -> float:
        """The event loop's clock, in seconds."""
        ...

    def create_cancel_scope(self, *, deadline: float = math.inf, shield: bool = False) -> anyio.CancelScope:
        """A new (not yet entered) cancel scope."""
        ...

    def checkpoint_if_cancelled(self) -> Awaitable[None]:
        """Raise the cancellation exception if the current task is cancelled (no scheduling)."""
        ...


class PublicBackend:
    """anyio's public functions in the shape of a backend (the fallback of :func:`current_backend`)."""

    @staticmethod
    def current_time() -> float:
        """``anyio.current_time()``."""
        return anyio.current_time()

    @staticmethod
    def create_cancel_scope(*, deadline: float = math.inf, shield: bool = False) -> anyio.CancelScope:
        """``anyio.CancelScope(deadline=..., shield=...)``."""
        return anyio.CancelScope(deadline=deadline, shield=shield)

    @staticmethod
    def checkpoint_if_cancelled() -> Awaitable[None]:
        """``anyio.lowlevel.checkpoint_if_cancelled()``."""
        return anyio.lowlevel.checkpoint_if_cancelled()


_NEEDED = ("current_time", "create_cancel_scope", "checkpoint_if_cancelled")


def current_backend() -> Backend:
    """The backend of the event loop running the current task (anyio's class, or the fallback)."""
    lookup = _private_lookup
    if lookup is None:
        report_fallback("backend-cache", "anyio._core._eventloop.get_async_backend is missing")
        return PublicBackend
    backend = lookup()
    if not all(callable(getattr(backend, name, None)) for name in _NEEDED):
        report_fallback("backend-cache", f"anyio backend {backend!r} lacks one of {_NEEDED}")
        return PublicBackend
    return backend  # type: ignore[no-any-return]
