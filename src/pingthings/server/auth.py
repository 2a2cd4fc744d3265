"""API-key authentication, call tracking and the per-call context: the server's :class:`CallPolicy`.

Every call of every service passes through :meth:`ServerPolicy.admit` before its handler starts:
it refuses calls while the server drains (gRPC UNAVAILABLE), checks the ``authorization: Bearer
<key>`` metadata when keys are configured (UNAUTHENTICATED, "invalid api key"), and records the
caller's admin flag. :meth:`ServerPolicy.run` then runs the handler with that flag and the data
directory set for it, counted as in flight by the :class:`CallTracker`.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Mapping
from pathlib import Path

from pingthings.server.errors import ServerError
from pingthings.server.grpc.call import Call
from pingthings.server.grpc.dispatch import Handler
from pingthings.server.grpc.status import GrpcError, GrpcStatus
from pingthings.server.service.context import caller_is_admin, serving_data_dir
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


class ServerPolicy:
    """Admission and per-call context for the embedded server (see the module docstring).

    Parameters
    ----------
    keys
        The accepted API keys (none: every caller is accepted, nobody is admin).
    tracker
        Counts calls in flight; its ``draining`` flag refuses new ones.
    data_dir
        The server's data directory, made known to every call's error reports.
    """

    def __init__(self, keys: KeyRing, tracker: CallTracker, data_dir: Path | None = None) -> None:
        self.keys = keys
        self.tracker = tracker
        self.data_dir = data_dir

    def admit(self, call: Call) -> None:
        """Refuse the call (GrpcError) while draining or without an accepted key; note its admin flag."""
        if self.tracker.draining:
            raise GrpcError(GrpcStatus.UNAVAILABLE, "server is shutting down")
        if self.keys.enabled:
            flag = self.keys.admin_flag(bearer_token(_header(call, b"authorization")))
            if flag is None:
                raise GrpcError(GrpcStatus.UNAUTHENTICATED, INVALID_KEY)
            call.admin = flag

    def started(self, call: Call) -> None:
        """Count the call as in flight."""
        self.tracker.enter()

    def finished(self, call: Call) -> None:
        """The call is over."""
        self.tracker.leave()

    async def run(self, call: Call, handler: Handler) -> None:
        """Run ``handler(call)`` with the caller's admin flag and the data directory set."""
        # the variables are set directly, not through admin_scope(): no generator per call
        token = serving_data_dir.set(self.data_dir)
        admin = caller_is_admin.set(call.admin)
        try:
            await handler(call)
        except ServerError as exc:  # a request refused before the handler's own error handling
            if not call.ended:
                await call.send_message(error_reply(exc))
        finally:
            caller_is_admin.reset(admin)
            serving_data_dir.reset(token)


def _header(call: Call, name: bytes) -> str | None:
    for key, value in call.headers:
        if key == name:
            return value.decode("latin-1")
    return None
