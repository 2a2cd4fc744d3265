"""Shared pieces of the CLI tests: known points, the populated collection, an in-process runner."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import numpy as np
from click.testing import CliRunner, Result

from pingthings.cli.main import cli

#: 2023-11-14T22:13:20Z, a whole second, so window boundaries are easy to reason about.
BASE_NS = 1_700_000_000_000_000_000


@dataclass(frozen=True)
class InsertedStream:
    """A stream the fixture created, with exactly the points it inserted."""

    uuid: uuid.UUID
    name: str
    times: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class Populated:
    """A collection holding two streams with known points, on the session server."""

    endpoint: str
    collection: str
    streams: dict[str, InsertedStream] = field(default_factory=dict)

    def run(self, *args: str) -> Result:
        """Run ``pingthings --endpoint <server> ARGS`` in-process."""
        return CliRunner().invoke(cli, ["--endpoint", self.endpoint, *args], catch_exceptions=False)


def make_points(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gaps = rng.integers(1_000_000, 20_000_000, n)  # irregular: 1 to 20 ms apart
    times = BASE_NS + np.cumsum(gaps).astype(np.int64)
    values = rng.normal(100.0, 15.0, n)
    return times, values
