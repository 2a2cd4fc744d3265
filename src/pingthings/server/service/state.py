"""Everything the v5 handlers share: the stores, the subscription hub and server facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pingthings.server.limits import (
    DEFAULT_CSV_SECONDS,
    DEFAULT_MAX_SQL_BYTES,
    DEFAULT_MAX_STREAMS_PER_REQUEST,
)
from pingthings.server.service.read_gate import ReadGate
from pingthings.server.service.subscriptions import SubscriptionHub

#: Largest number of points one Insert or ArrowInsert may carry (clients send 50 000).
DEFAULT_MAX_INSERT_POINTS = 1_000_000


@dataclass
class ServiceState:
    """Shared state of the BTrDB service.

    Attributes
    ----------
    engine
        The storage engine (``pingthings.server.engine.Engine``).
    meta
        The metadata store (``pingthings.server.metadata.MetadataStore``).
    hub
        In-process pub/sub for Subscribe.
    endpoint
        ``host:port`` this server answers on, reported by Info as the proxy endpoint.
    max_insert_points
        Inserts larger than this are refused with 414.
    read_gate
        Bounds how many streamed reads compute their next reply at once (server-wide).
    max_sql_bytes
        Longest SQL text accepted (UTF-8 bytes), checked before parsing.
    max_streams_per_request
        Most distinct streams one multi-stream request may name.
    csv_seconds
        Time budget of one GenerateCSV request (SQL queries have theirs in the metadata store).
    """

    engine: Any
    meta: Any
    hub: SubscriptionHub
    endpoint: str = ""
    max_insert_points: int = DEFAULT_MAX_INSERT_POINTS
    read_gate: ReadGate = field(default_factory=ReadGate)
    max_sql_bytes: int = DEFAULT_MAX_SQL_BYTES
    max_streams_per_request: int = DEFAULT_MAX_STREAMS_PER_REQUEST
    csv_seconds: float = DEFAULT_CSV_SECONDS
    #: Writes every insert in a thread of its own (created by the first insert).
    ingest: Any = None

    @property
    def activity(self) -> Any:
        """What a clean stop waits for before closing the stores: the ingest writer (None before
        the first insert), whose ``wait()`` returns once every insert handed to it is written."""
        return self.ingest
