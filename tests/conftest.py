"""Shared pytest fixtures.

Async tests use anyio's pytest plugin; every test marked ``anyio`` (or taking the ``anyio_backend``
fixture) runs once on asyncio and once on trio.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

# Shared 2-core machines make per-example timings meaningless: no deadlines, and no health check
# that judges speed. Property tests still run every example they generate.
settings.register_profile("pingthings", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("pingthings")


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run each async test on both of anyio's backends."""
    return str(request.param)


# ------------------------------------------------------------------------------------------------
# Embedded server fixtures (owned by the server work): real servers on 127.0.0.1, real SQLite files.

import re  # noqa: E402
import uuid as _uuid  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:
    from pingthings.server import Server

#: The ordinary and the admin API key of the ``auth_server`` fixture.
TEST_API_KEY = "test-key-0123456789abcdef"
TEST_ADMIN_KEY = "admin-key-fedcba9876543210"


@dataclass(frozen=True)
class AuthServer:
    """What the ``auth_server`` fixture hands out: the server and its two keys."""

    server: Server
    endpoint: str
    api_key: str
    admin_key: str


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A session-wide embedded server on 127.0.0.1 (free port), no auth, fresh data directory."""
    from pingthings.server import Server

    with Server(tmp_path_factory.mktemp("server-data"), listen="127.0.0.1:0") as srv:
        yield srv


@pytest.fixture(scope="session")
def server_endpoint(server: Server) -> str:
    """``host:port`` of the ``server`` fixture."""
    return server.endpoint


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    """A session-wide embedded server requiring API keys: ``api_key`` (plain) and ``admin_key``."""
    from pingthings.server import Server

    keys = {TEST_API_KEY: False, TEST_ADMIN_KEY: True}
    with Server(tmp_path_factory.mktemp("auth-server-data"), listen="127.0.0.1:0", api_keys=keys) as srv:
        yield AuthServer(srv, srv.endpoint, TEST_API_KEY, TEST_ADMIN_KEY)


@pytest.fixture
def unique_collection(request: pytest.FixtureRequest) -> str:
    """A collection name no other test uses (test name plus a random suffix)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:80]
    return f"pt_tests/{name}/{_uuid.uuid4().hex[:12]}"


@pytest.fixture
def imports_pandas() -> Callable[[str], bool]:
    """Run a script in a fresh interpreter; whether pandas was imported once it ended (a failure of the
    script fails the test). pyarrow imports pandas (0.4 s) on some first uses; the paths that must not
    pay it are checked this way."""
    import subprocess
    import sys

    def run(script: str) -> bool:
        probe = script + "\nimport sys\nprint('pandas' in sys.modules)\n"
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1] == "True"

    return run
