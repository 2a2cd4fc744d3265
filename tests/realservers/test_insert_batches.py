"""Insert batching against servers with different limits, and what a failed insert reports."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator

import numpy as np
import pytest

from pingthings.timeseries import AsyncClient
from pingthings.timeseries.exceptions import InvalidArgumentError, PartialInsertError, ServerError
from tests.realservers.btrdb_double import Behaviour, RunningDouble, Store

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000_000_000_000
STEP = 1_000_000


def _points(n: int) -> tuple[np.ndarray, np.ndarray]:
    return T0 + np.arange(n, dtype=np.int64) * STEP, np.arange(n, dtype=np.float64)


@pytest.fixture
def double(request: pytest.FixtureRequest) -> Iterator[RunningDouble]:
    """A v4 double; a test changes its behaviour with an indirect parametrization of ``double``."""
    running = RunningDouble(Store(), getattr(request, "param", Behaviour()))
    try:
        yield running
    finally:
        running.stop()


def _stored(double: RunningDouble, stream_id: uuidlib.UUID) -> np.ndarray:
    with double.store.lock:
        return double.store.streams[stream_id.bytes].times.copy()


async def test_the_batch_size_follows_the_server_version(double: RunningDouble, server_endpoint: str) -> None:
    async with await AsyncClient.connect(endpoint=double.endpoint) as v4:
        assert v4.insert_batch_size == 25_000
    async with await AsyncClient.connect(endpoint=server_endpoint) as v5:
        assert v5.insert_batch_size == 50_000
    async with await AsyncClient.connect(endpoint=double.endpoint, insert_batch_size=7_000) as chosen:
        assert chosen.insert_batch_size == 7_000


async def test_a_per_call_batch_size(double: RunningDouble) -> None:
    times, values = _points(30_000)
    async with await AsyncClient.connect(endpoint=double.endpoint) as client:
        stream = await client.create(uuidlib.uuid4(), "c", {"name": "n"})
        await stream.insert((times, values), batch_size=10_000)
        with pytest.raises(InvalidArgumentError, match="batch_size must be a positive integer"):
            await stream.insert((times, values), batch_size=0)
    assert [r.points for r in double.inserts()] == [10_000] * 3


@pytest.mark.parametrize("double", [Behaviour(insert_limit=10_000)], indirect=True)
async def test_a_414_halves_the_first_batch_before_anything_else_is_sent(double: RunningDouble) -> None:
    times, values = _points(60_000)
    async with await AsyncClient.connect(endpoint=double.endpoint) as client:
        stream = await client.create(uuidlib.uuid4(), "c", {"name": "n"})
        await stream.insert((times, values))
        assert client.insert_batch_size == 6_250  # learned: 25,000 -> 12,500 -> 6,250
        np.testing.assert_array_equal(_stored(double, stream.uuid), times)
    records = double.inserts()
    assert [(r.points, r.code) for r in records[:3]] == [(25_000, 414), (12_500, 414), (6_250, 0)]
    assert all(r.code == 0 and r.points <= 6_250 for r in records[2:])


@pytest.mark.parametrize("double", [Behaviour(insert_limit=10)], indirect=True)
async def test_points_sharing_one_timestamp_that_are_still_too_big_name_the_problem(
    double: RunningDouble,
) -> None:
    times = np.full(40, T0, dtype=np.int64)
    async with await AsyncClient.connect(endpoint=double.endpoint) as client:
        stream = await client.create(uuidlib.uuid4(), "c", {"name": "n"})
        with pytest.raises(InvalidArgumentError, match="40 points in one Insert as too big"):
            await stream.insert((times, np.zeros(40)))


@pytest.mark.parametrize("double", [Behaviour(failing_inserts={1})], indirect=True)
async def test_a_refused_first_batch_writes_nothing(double: RunningDouble) -> None:
    times, values = _points(120_000)
    async with await AsyncClient.connect(endpoint=double.endpoint) as client:
        stream = await client.create(uuidlib.uuid4(), "c", {"name": "n"})
        with pytest.raises(ServerError, match="injected failure") as info:
            await stream.insert((times, values))
    assert not isinstance(info.value, PartialInsertError)
    assert len(double.inserts()) == 1  # nothing else went out
    assert _stored(double, stream.uuid).size == 0


@pytest.mark.parametrize("double", [Behaviour(failing_inserts={3})], indirect=True)
async def test_a_later_failure_reports_what_was_written(double: RunningDouble) -> None:
    times, values = _points(100_000)
    async with await AsyncClient.connect(endpoint=double.endpoint) as client:
        stream = await client.create(uuidlib.uuid4(), "c", {"name": "n"})
        with pytest.raises(PartialInsertError) as info:
            await stream.insert((times, values))
    error = info.value
    assert isinstance(error.__cause__, ServerError) and error.error is error.__cause__
    assert "injected failure" in str(error)
    assert error.written[0].start == T0 and error.written[0].points == 25_000
    stored = _stored(double, stream.uuid)
    for part in error.written:
        inside = times[(times >= part.start) & (times <= part.end)]
        assert inside.size == part.points
        assert np.isin(inside, stored).all()  # every acknowledged batch is really stored
        assert part.version > 10
    assert sum(p.points for p in error.written) < times.size
