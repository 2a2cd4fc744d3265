"""The canonical gRPC status codes, shared by the client's transport and its exceptions.

These are the call-level codes of gRPC itself (``grpc-status`` in the trailers), distinct from the v5
protocol's own ``stat`` codes in :mod:`pingthings.wire.status`.
"""

from __future__ import annotations

from enum import IntEnum


class GrpcStatus(IntEnum):
    """The canonical gRPC status codes (distinct from BTrDB's own ``stat`` codes)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


def status_name(status: int) -> str:
    """Return ``"NAME (code)"`` for a gRPC status, or ``"status <code>"`` for a code gRPC does not define."""
    try:
        return f"{GrpcStatus(status).name} ({status})"
    except ValueError:
        return f"status {status}"


__all__ = ["GrpcStatus", "status_name"]
