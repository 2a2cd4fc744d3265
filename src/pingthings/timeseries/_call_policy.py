"""How long a call may take, when it is tried again, and how many calls may queue: the call policy.

A client carries one :class:`CallSettings` (from ``connect()``'s arguments, the environment or the profile).
Code can narrow or widen the per-call timeout for a block with :class:`TimeoutScope`
(``with client.timeout(5): ...``); the scope lives in a :class:`contextvars.ContextVar`, so it follows the
task that entered it into every task it starts (a StreamSet's fan-out included), under asyncio and trio, and
the synchronous client hands the caller thread's scopes to the event-loop task that runs the call.

Nothing here talks to the network; :mod:`pingthings.timeseries._rpc` applies the policy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

DEFAULT_TIMEOUT = 60.0
"""Seconds a unary call may take, and a streaming read may wait for its next message, by default."""

DEFAULT_RETRIES = 3
"""Times a failed idempotent call is tried again, by default."""

DEFAULT_RETRY_BUDGET = 10.0
"""Seconds after a call started during which a new attempt may still begin, by default."""

DEFAULT_MAX_WAITING = 1000
"""Calls that may wait for the concurrency limiter at once before new ones fail with OverloadedError."""

BACKOFF_FIRST = 0.05
"""Seconds of the first backoff; each retry doubles it."""

BACKOFF_CAP = 2.0
"""Longest backoff between two attempts (seconds)."""

IDEMPOTENT_METHODS = frozenset(
    {
        # v5api.BTrDB: reads, lookups, info and SQL
        "Info",
        "StreamInfo",
        "LookupStreams",
        "ListCollections",
        "SQLQuery",
        "RawValues",
        "AlignedWindows",
        "Windows",
        "Nearest",
        "Changes",
        "ArrowRawValues",
        "ArrowAlignedWindows",
        "ArrowWindows",
        "ArrowMultiValues",
        "Flush",
        # pingthings.platform.v1.Platform: reads
        "VersionAtTime",
        "MultiAlignedWindows",
        "RawBlocks",
        "GetStreamRetention",
        "GetCollectionProperties",
        "GetDevice",
        "ListDevices",
        "GetUnit",
        "ListUnits",
    }
)
"""Methods that may be sent again after a failure without changing the outcome."""

IDEMPOTENT_MERGE_POLICIES = frozenset({1, 2, 3})
"""Insert merge policies (equal, retain, replace) under which the same points sent twice are stored once."""


@dataclass(frozen=True)
class CallSettings:
    """The call policy of one client.

    Attributes
    ----------
    timeout
        Seconds a unary call may take in total (queueing for the concurrency limiter included), and a
        streaming call may wait for each message; ``math.inf`` for no limit.
    retries
        How many times a failed idempotent call is tried again (0 disables retries).
    retry_budget
        Seconds after the call started during which another attempt may still begin.
    max_waiting
        Calls that may wait for the concurrency limiter at once; one more fails with OverloadedError.
    """

    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    retry_budget: float = DEFAULT_RETRY_BUDGET
    max_waiting: int = DEFAULT_MAX_WAITING


_NO_SCOPES: Mapping[object, float] = MappingProxyType({})
_SCOPED_TIMEOUTS: ContextVar[Mapping[object, float]] = ContextVar("pingthings_timeouts", default=_NO_SCOPES)


def check_timeout(value: Any, where: str) -> float:
    """A timeout in seconds: a positive number, ``math.inf`` or None (no limit, returned as ``math.inf``).

    Raises
    ------
    ValueError
        For zero, a negative number, NaN or anything not a number.
    """
    if value is None:
        return math.inf
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where} must be a number of seconds or None, got {value!r}")
    seconds = float(value)
    if not seconds > 0:  # also refuses NaN
        raise ValueError(f"{where} must be positive (seconds), got {value!r}")
    return seconds


def current_timeout(owner: object, default: float) -> float:
    """The per-call timeout for ``owner``'s calls here: the innermost scope's, else ``default``."""
    scopes = _SCOPED_TIMEOUTS.get()
    if not scopes:
        return default
    return scopes.get(owner, default)


def active_scopes() -> Mapping[object, float]:
    """Every timeout scope in force in this context (empty mapping when none)."""
    return _SCOPED_TIMEOUTS.get()


def install_scopes(scopes: Mapping[object, float]) -> None:
    """Put the scopes captured in another context into this one (the event-loop side of a sync call)."""
    _SCOPED_TIMEOUTS.set(scopes)


class TimeoutScope:
    """``with client.timeout(5): ...``: every call the client starts in the block gets that timeout.

    A plain (not async) context manager, so it works the same in sync code, in asyncio and in trio. Scopes
    nest (the innermost wins) and belong to one client. The block as a whole is not bounded; each call
    started in it is.

    Parameters
    ----------
    owner
        The client whose calls the scope governs.
    seconds
        The per-call timeout; None for no limit.
    """

    __slots__ = ("_owner", "_seconds", "_token")

    def __init__(self, owner: object, seconds: float | None) -> None:
        self._owner = owner
        self._seconds = check_timeout(seconds, "timeout")
        self._token: Token[Mapping[object, float]] | None = None

    @property
    def seconds(self) -> float:
        """The timeout this scope sets (``math.inf`` for none)."""
        return self._seconds

    def __enter__(self) -> TimeoutScope:
        if self._token is not None:
            raise RuntimeError("a timeout scope cannot be entered twice at once")
        scopes = dict(_SCOPED_TIMEOUTS.get())
        scopes[self._owner] = self._seconds
        self._token = _SCOPED_TIMEOUTS.set(MappingProxyType(scopes))
        return self

    def __exit__(self, *exc_info: object) -> None:
        token, self._token = self._token, None
        if token is not None:
            _SCOPED_TIMEOUTS.reset(token)


def backoff(attempt: int) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): doubling from BACKOFF_FIRST up to
    BACKOFF_CAP, with the upper half randomised so that many clients do not retry in lockstep."""
    ceiling = min(BACKOFF_CAP, BACKOFF_FIRST * (2 ** (attempt - 1)))
    return ceiling / 2 + random.uniform(0.0, ceiling / 2)


def format_seconds(seconds: float) -> str:
    """``5 s``, ``0.25 s``: how an error names a limit."""
    return f"{seconds:g} s"
