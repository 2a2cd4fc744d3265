"""Fixtures for the tests against stand-ins of stock BTrDB servers (see :mod:`btrdb_double`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.realservers.btrdb_double import Behaviour, RunningDouble, Store


@pytest.fixture
def v4_server() -> Iterator[RunningDouble]:
    """A BTrDB 4.15 double (gzip replies, 25k insert limit, v4 ListCollections, raw annotations, no
    platform service) on 127.0.0.1, stopped after the test."""
    double = RunningDouble(Store(), Behaviour())
    try:
        yield double
    finally:
        double.stop()
