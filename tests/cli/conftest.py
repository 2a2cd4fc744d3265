"""Fixtures for the CLI tests: a populated collection on the session's embedded server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from .support import InsertedStream, Populated, make_points


@pytest.fixture(scope="module")
def populated(server_endpoint: str) -> Iterator[Populated]:
    """Two streams (``volts``, ``amps``) of a few thousand irregular points in a fresh collection."""
    import pingthings.timeseries as pt

    collection = f"cli_tests/{uuid.uuid4().hex[:10]}"
    result = Populated(server_endpoint, collection)
    with pt.connect(endpoint=server_endpoint) as conn:
        for seed, (name, unit) in enumerate((("V1", "volts"), ("I1", "amps"))):
            times, values = make_points(seed, 3_000 + 500 * seed)
            stream = conn.create(uuid.uuid4(), collection, tags={"name": name, "unit": unit},
                                 annotations={"phase": "A"})
            stream.insert((times, values))
            result.streams[name] = InsertedStream(stream.uuid, name, times, values)
    yield result
