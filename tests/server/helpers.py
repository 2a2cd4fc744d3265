"""Shared helpers for the server tests: creating streams and inserting points over raw gRPC."""

from __future__ import annotations

import uuid as uuidlib

import numpy as np

from pingthings._proto import v5api
from pingthings.wire import points
from tests.server.rawclient import RawClient, stat_code


def kv(mapping: dict[str, str | None]) -> list[v5api.KeyOptValue]:
    """KeyOptValue list from a dict (None → no value)."""
    return [
        v5api.KeyOptValue(key=k, val=None if v is None else v5api.OptValue(value=v))
        for k, v in mapping.items()
    ]


def create(
    client: RawClient,
    collection: str,
    tags: dict[str, str | None] | None = None,
    annotations: dict[str, str | None] | None = None,
    uu: bytes | None = None,
) -> bytes:
    """Create a stream and return its uuid; fails the test on a non-OK stat."""
    uu = uu or uuidlib.uuid4().bytes
    tags = tags or {"name": uuidlib.uuid4().hex[:10]}
    reply = client.unary(
        "Create",
        v5api.CreateParams(uuid=uu, collection=collection, tags=kv(tags), annotations=kv(annotations or {})),
    )
    assert stat_code(reply) == 0, v5api.CreateResponse.parse(reply)
    return uu


def insert(client: RawClient, uu: bytes, times: np.ndarray, values: np.ndarray, merge_policy: int = 0) -> int:
    """Insert points and return the new version; fails the test on a non-OK stat."""
    reply = v5api.InsertResponse.parse(
        client.unary("Insert", points.encode_insert(uu, times, values, merge_policy=merge_policy))
    )
    assert reply.stat is None, reply.stat
    return reply.version_major


def flush(client: RawClient, uu: bytes) -> int:
    """Flush a stream (merge its buffered inserts) and return its version."""
    reply = v5api.FlushResponse.parse(client.unary("Flush", v5api.FlushParams(uuid=uu)))
    assert reply.stat is None, reply.stat
    return reply.version_major


def random_points(
    rng: np.random.Generator, n: int, start: int = 1_000_000_000_000, spread: int = 10**12
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` distinct random timestamps in [start, start + spread) with random values, unsorted."""
    times = rng.choice(spread, size=n, replace=False).astype(np.int64) + start
    return times, rng.normal(size=n)
