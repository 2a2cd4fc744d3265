"""Fixtures of the metadata store tests: a fresh store in a real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pingthings.server.metadata import MetadataStore


class FakeClock:
    """A settable wall clock in ns, so timestamps in tests are chosen, not waited for."""

    def __init__(self, start_ns: int = 1_700_000_000_000_000_000) -> None:
        self.now_ns = start_ns

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, ns: int) -> None:
        self.now_ns += ns


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "meta.sqlite"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(db_path: Path, clock: FakeClock) -> Iterator[MetadataStore]:
    meta = MetadataStore(db_path, clock=clock)
    yield meta
    meta.close()
