"""Per-call facts that handlers need but that do not travel in the request message.

The auth layer sets these before a handler runs; anything running in the same call (including
worker threads started with ``anyio.to_thread.run_sync`` or ``asyncio.to_thread``, which copy the
context) can read them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

#: True when the caller authenticated with an admin key (a server without keys has no admins:
#: hidden streams stay hidden from every caller).
caller_is_admin: ContextVar[bool] = ContextVar("pingthings_caller_is_admin", default=False)


def is_admin() -> bool:
    """Return whether the current call may see hidden streams and collections."""
    return caller_is_admin.get()


@contextmanager
def admin_scope(admin: bool) -> Iterator[None]:
    """Set the caller's admin flag for the duration of a ``with`` block.

    Parameters
    ----------
    admin
        The flag handlers will read through :func:`is_admin`.
    """
    token = caller_is_admin.set(admin)
    try:
        yield
    finally:
        caller_is_admin.reset(token)


#: The data directory of the server serving the current call (set by the auth layer), so an
#: error report can say which disk is full. None outside a call.
serving_data_dir: ContextVar[Path | None] = ContextVar("pingthings_serving_data_dir", default=None)
