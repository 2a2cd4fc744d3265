"""The record of fast paths that rely on other libraries' private attributes.

A few hot paths of the client reach into anyio internals (reading anyio's TLS buffer, writing past
anyio's socket stream); the embedded server uses none since it runs on its own HTTP/2 layer
(``pingthings.wire.http2``).
Each checks what it needs first and, when the library no longer looks as expected, falls back to the
library's public behaviour: slower, never wrong. :func:`report_fallback` is how a fast path says so:
one debug-level log line per fast path and process (the logger is ``pingthings.fastpaths``), and a
name in :func:`fallbacks_taken`. The versions CI installs must take no fallback
(``tests/test_fastpaths.py``); docs/dependencies.md lists each fast path and the internals it uses.

This module imports nothing from the rest of the package, so every layer may use it.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("pingthings.fastpaths")

#: The fast paths, by the name each reports under, with the library internals each one relies on.
FAST_PATHS: dict[str, str] = {
    "tls-drain": "anyio TLSStream._read_bio",
    "direct-write": "anyio asyncio SocketStream._transport and _protocol.write_event",
    "large-reads": "anyio asyncio SocketStream._transport and asyncio's transport.max_size",
    "backend-cache": "anyio._core._eventloop.get_async_backend",
    "flat-encode": "betterproto2's generated classes' _betterproto.meta_by_field_name",
    "steady-read": (
        "anyio asyncio SocketStream._transport and _protocol (read_queue, read_event, is_at_eof, exception)"
    ),
}

_taken: set[str] = set()
_lock = threading.Lock()


def report_fallback(name: str, reason: str) -> None:
    """Note that the fast path ``name`` is not used, logging it at debug level the first time only.

    Parameters
    ----------
    name
        A key of :data:`FAST_PATHS`.
    reason
        What was missing or different, for the log line.
    """
    with _lock:
        if name in _taken:
            return
        _taken.add(name)
    log.debug("fast path %r falls back to the public API: %s (relies on %s)", name, reason, FAST_PATHS[name])


def fallbacks_taken() -> frozenset[str]:
    """The names of the fast paths that have fallen back in this process so far."""
    with _lock:
        return frozenset(_taken)


def forget_fallbacks() -> None:
    """Clear the record, so that the next fallback of each fast path is logged again (for tests)."""
    with _lock:
        _taken.clear()
