"""Shared pytest fixtures.

Async tests use anyio's pytest plugin; every test marked ``anyio`` (or taking the ``anyio_backend``
fixture) runs once on asyncio and once on trio.
"""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run each async test on both of anyio's backends."""
    return str(request.param)
