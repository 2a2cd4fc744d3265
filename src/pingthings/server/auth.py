"""API-key authentication, call tracking and the per-call admin flag, as a grpclib event hook.

Every RPC of every service on the server passes through :func:`install`'s ``RecvRequest``
listener: it refuses calls while the server drains, checks the ``authorization: Bearer <key>``
metadata when keys are configured (gRPC UNAUTHENTICATED, "invalid api key" otherwise), and wraps
the method so that it runs with the caller's admin flag set and is counted as in flight.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpclib.events
import grpclib.server
from grpclib.const import Status
from grpclib.exceptions import GRPCError

from pingthings.server.errors import ServerError
from pingthings.server.limits import DEFAULT_MAX_MESSAGE_BYTES
from pingthings.server.service.context import admin_scope, serving_data_dir
from pingthings.server.service.message_limit import bound_requests
from pingthings.server.service.replies import error_reply

INVALID_KEY = "invalid api key"


def bearer_token(header: str | None) -> str | None:
    """Extract the key from an ``authorization`` value (scheme ``bearer``, any case)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


class KeyRing:
    """The accepted API keys and their admin flags."""

    def __init__(self, keys: Mapping[str, bool]) -> None:
        self._keys = [(key.encode(), bool(admin)) for key, admin in keys.items()]

    @property
    def enabled(self) -> bool:
        """Whether any key is configured (otherwise every caller is accepted)."""
        return bool(self._keys)

    def admin_flag(self, token: str | None) -> bool | None:
        """The admin flag of ``token``, or None when it is not an accepted key."""
        if token is None:
            return None
        candidate = token.encode()
        found: bool | None = None
        for key, admin in self._keys:  # compare against every key: no early exit on a match
            if hmac.compare_digest(key, candidate):
                found = admin
        return found


class CallTracker:
    """Counts calls in flight and refuses new ones once the server starts draining."""

    def __init__(self) -> None:
        self.draining = False
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        """Note a call starting."""
        self._active += 1
        self._idle.clear()

    def leave(self) -> None:
        """Note a call finishing."""
        self._active -= 1
        if self._active == 0:
            self._idle.set()

    @property
    def active(self) -> int:
        """Calls currently in flight."""
        return self._active

    async def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for every call to finish; return whether they did."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


def install(
    server: grpclib.server.Server,
    keys: KeyRing,
    tracker: CallTracker,
    data_dir: Path | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> None:
    """Attach authentication, call tracking and the request size bound to every method of ``server``.

    ``data_dir`` (the server's data directory) is made known to error reports of every call; no
    request message may be larger than ``max_message_bytes`` (see :mod:`.service.message_limit`).
    """

    async def on_request(event: Any) -> None:
        if tracker.draining:
            raise GRPCError(Status.UNAVAILABLE, "server is shutting down")
        admin = False
        if keys.enabled:
            flag = keys.admin_flag(bearer_token(_first(event.metadata, "authorization")))
            if flag is None:
                raise GRPCError(Status.UNAUTHENTICATED, INVALID_KEY)
            admin = flag
        method = event.method_func

        async def tracked(stream: grpclib.server.Stream[Any, Any]) -> None:
            tracker.enter()
            token = serving_data_dir.set(data_dir)
            bound = bound_requests(stream, max_message_bytes)
            try:
                with admin_scope(admin):
                    await method(stream)
            except ServerError as exc:  # a request refused before the handler's own error handling
                await _answer_refusal(stream, exc)
            finally:
                serving_data_dir.reset(token)
                tracker.leave()
            if bound is not None:
                await bound.finish()

        event.method_func = tracked

    grpclib.events.listen(server, grpclib.events.RecvRequest, on_request)


async def _answer_refusal(stream: grpclib.server.Stream[Any, Any], exc: ServerError) -> None:
    """Reply with a stat-only message (field 1 of every v5 and platform reply).

    A unary call that already has its reply gets nothing more; its trailers end it.
    """
    streaming = bool(getattr(getattr(stream, "_cardinality", None), "server_streaming", False))
    if not getattr(stream, "_send_message_done", False) or streaming:
        await stream.send_message(error_reply(exc))


def _first(metadata: Any, name: str) -> str | None:
    value = metadata.get(name) if metadata is not None else None
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value
