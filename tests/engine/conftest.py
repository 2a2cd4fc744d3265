"""Fixtures for the storage-engine tests: a fresh engine on a real SQLite file, with a fake clock."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pingthings.server.engine import Engine


class FakeClock:
    """A wall clock that advances 1 s on every reading, so commit times are predictable."""

    def __init__(self, start: int = 1_700_000_000_000_000_000) -> None:
        self._ticks = itertools.count(start, 1_000_000_000)
        self.last = start

    def __call__(self) -> int:
        self.last = next(self._ticks)
        return self.last


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def engine(tmp_path: Path, clock: FakeClock) -> Iterator[Engine]:
    eng = Engine(tmp_path / "engine.sqlite3", clock=clock)
    yield eng
    eng.close()


@pytest.fixture
def stream(engine: Engine) -> bytes:
    sid = uuid.uuid4().bytes
    engine.create_stream(sid)
    return sid
