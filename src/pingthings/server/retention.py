"""Retention enforcement: delete the data that the streams' retention policies have expired.

The server calls :func:`enforce_retention` every ``retention_interval`` seconds. Each stream
whose effective policy (see :mod:`pingthings.server.metadata.retention_store`) trims data loses
the points older than ``now - remove_older_than_ns`` through an ordinary engine delete, which
makes a new data version like any other delete; older versions keep the points.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from pingthings.server.errors import ServerError, StreamNotFound
from pingthings.wire.limits import MIN_TIME, TIME_LIMIT

_log = logging.getLogger(__name__)


class RetentionSource(Protocol):
    """What enforcement needs from the metadata store."""

    def retention_targets(self) -> list[tuple[bytes, int]]:
        """``(uuid, remove_older_than_ns)`` of every stream whose effective policy trims."""
        ...


def retention_cutoff(now_ns: int, remove_older_than_ns: int) -> int:
    """The time before which data is expired, clamped to the time axis ``(MIN_TIME, TIME_LIMIT)``."""
    return min(max(now_ns - remove_older_than_ns, MIN_TIME), TIME_LIMIT - 1)


def enforce_retention(meta: RetentionSource, engine: Any, now_ns: int) -> list[tuple[bytes, int, int]]:
    """Apply every retention policy once.

    Parameters
    ----------
    meta
        The metadata store (its ``retention_targets``).
    engine
        The storage engine (``count`` and ``delete``).
    now_ns
        The wall-clock time to measure ages from, in ns since the epoch (injectable).

    Returns
    -------
    list of tuple
        ``(uuid, cutoff, new_version)`` for every stream that had expired data and was trimmed;
        streams with nothing older than their cutoff are left alone (no new version).

    Notes
    -----
    A stream obliterated meanwhile is skipped; any other error on one stream is logged and the
    remaining streams are still processed.
    """
    trimmed: list[tuple[bytes, int, int]] = []
    for uuid, remove_older_than_ns in meta.retention_targets():
        cutoff = retention_cutoff(now_ns, remove_older_than_ns)
        if cutoff <= MIN_TIME:
            continue
        try:
            _, expired = engine.count(uuid, MIN_TIME, cutoff)
            if expired == 0:
                continue
            version = engine.delete(uuid, MIN_TIME, cutoff)
        except StreamNotFound:
            continue
        except ServerError as exc:
            _log.warning("retention of stream %s failed: %s", uuid.hex(), exc)
            continue
        trimmed.append((uuid, cutoff, version))
    return trimmed
