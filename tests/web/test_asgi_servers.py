"""The guide's example apps on uvicorn (asyncio) and hypercorn (trio), in subprocesses, driven by httpx.

The platform is ``pingthings serve`` in its own process too, so it can be stopped, restarted and
frozen (SIGSTOP) the way a real deployment's platform can.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import numpy as np
import pytest

import pingthings.timeseries as pt
from tests.web.asgi_process import SERVERS, AppProcess, serve_app, stop_app
from tests.web.restartable import RestartableServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

POINTS = 50_000
DEADLINE = "1"  # APP_REQUEST_DEADLINE of the apps under test (seconds)
DRAIN_LIMIT = 10.0  # seconds the app may take to get back to its baseline
MEMORY_SLACK = 64 << 20  # RSS allowed above the baseline once drained (allocator caches)
TASK_SLACK = 8
FD_SLACK = 8


@dataclass(frozen=True)
class Platform:
    """The platform process and a stream with data on it."""

    server: RestartableServer
    stream: uuid.UUID


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    server = RestartableServer(tmp_path_factory.mktemp("web-platform"))
    server.start()
    try:
        with pt.connect(endpoint=server.endpoint) as conn:
            stream = conn.create(uuid.uuid4(), "web/tests", {"name": "load"})
            times = np.arange(1, POINTS + 1, dtype=np.int64)
            stream.insert((times, np.linspace(0.0, 1.0, POINTS)))
        yield Platform(server, stream.uuid)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def shared_apps(platform: Platform) -> Iterator[Callable[[str, str], AppProcess]]:
    """Apps on the healthy platform, started on first use and shared by the module's read-only tests."""
    running: dict[tuple[str, str], AppProcess] = {}
    with ExitStack() as stack:

        def get(server: str, example: str) -> AppProcess:
            if (server, example) not in running:
                env = _app_env(platform.server.endpoint)
                running[server, example] = stack.enter_context(serve_app(server, env, example))
            return running[server, example]

        yield get


def _app_env(endpoint: str, **extra: str) -> dict[str, str]:
    return {"BTRDB_ENDPOINTS": endpoint, "APP_REQUEST_DEADLINE": DEADLINE,
            "PINGTHINGS_CONCURRENCY_LIMIT": "2", **extra}


def _stats(http: httpx.Client) -> dict[str, int]:
    stats: dict[str, int] = http.get("/_debug/stats", timeout=5).json()
    return stats


# ------------------------------------------------------------------------------- abandoned requests
async def _abandoning_clients(
    url: str, path: str, seconds: float, clients: int
) -> tuple[list[tuple[int, str]], int]:
    """``clients`` loops that each send ``path`` and give up after 50 ms, for ``seconds``: the
    answers they got (status, start of the body) and how many requests they abandoned."""
    answers: list[tuple[int, str]] = []
    abandoned = 0

    async def one_client() -> None:
        nonlocal abandoned
        limits = httpx.Limits(max_connections=1)
        # The client gives up on the answer, not on connecting. With connects cut off at 50 ms too,
        # runs on CI's minimums (anyio 4.10) failed 3 times in 45: the app still held 13-29 extra
        # connections past DRAIN_LIMIT, ESTABLISHED and with nothing left to read, whose client
        # sockets this process had not closed. With this timeout, 0 in 40. Connecting to
        # 127.0.0.1 takes well under 50 ms anyway.
        timeout = httpx.Timeout(0.05, connect=5.0)
        async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as http:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    answer = await http.get(path)
                except httpx.TimeoutException:  # the client disconnects; the app is not told
                    abandoned += 1
                else:
                    answers.append((answer.status_code, answer.text[:200]))

    async with anyio.create_task_group() as tg:
        for _ in range(clients):
            tg.start_soon(one_client)
    return answers, abandoned


def _wait_for_baseline(http: httpx.Client, base: dict[str, int]) -> dict[str, int]:
    """Poll the app's stats until tasks, fds and memory are back near ``base``; the last reading."""
    deadline = time.monotonic() + DRAIN_LIMIT
    while True:
        now = _stats(http)
        if (now["tasks"] <= base["tasks"] + TASK_SLACK and now["fds"] <= base["fds"] + FD_SLACK
                and now["rss"] <= base["rss"] + MEMORY_SLACK):
            return now
        if time.monotonic() > deadline:
            pytest.fail(f"not back at the baseline {base} within {DRAIN_LIMIT} s: {now}")
        time.sleep(0.2)


@pytest.mark.parametrize("server", SERVERS)
def test_abandoned_requests_drain_and_new_requests_answer_fast(platform: Platform, server: str) -> None:
    # While the platform is frozen, requests queue on the client's limiter; their HTTP clients give
    # up after 50 ms, but neither uvicorn nor hypercorn cancels the handlers. The per-request
    # deadline of the example app ends each of them within a second.
    path = f"/streams/{platform.stream}/raw?start=0&end={POINTS + 1}"
    with serve_app(server, _app_env(platform.server.endpoint)) as app, httpx.Client(base_url=app.url) as http:
        assert http.get(path, timeout=30).status_code == 200  # warm: connected, Arrow known
        base = _stats(http)
        platform.server.pause()
        try:
            answers, abandoned = anyio.run(_abandoning_clients, app.url, path, 2.0, 50)
        finally:
            platform.server.resume()
        # Nothing can be answered while the platform is frozen. Twice in ~50 loaded runs one
        # request was, for a reason not known yet: the message shows what it got.
        assert abandoned > 100 and not answers, (abandoned, answers)
        _wait_for_baseline(http, base)
        started = time.monotonic()
        assert http.get(path, timeout=30).status_code == 200
        assert time.monotonic() - started < 1.0
        assert stop_app(app) < 10.0  # SIGTERM is obeyed: the lifespan closes the client


# --------------------------------------------------------------------------------- error mappings
@pytest.mark.parametrize("example", ["async_app", "sync_app"])
@pytest.mark.parametrize("server", SERVERS)
def test_answers_and_client_errors_map_to_their_status(
    platform: Platform, shared_apps: Callable[[str, str], AppProcess], server: str, example: str
) -> None:
    stream = platform.stream
    with httpx.Client(base_url=shared_apps(server, example).url, timeout=30) as http:
        ok = http.get(f"/streams/{stream}/count")
        assert ok.status_code == 200 and ok.json()["count"] == POINTS
        raw = http.get(f"/streams/{stream}/raw", params={"start": 1, "end": 11}).json()
        assert raw["time"] == list(range(1, 11))
        missing = http.get(f"/streams/{uuid.uuid4()}/count")
        assert (missing.status_code, missing.json()["error"]) == (404, "StreamNotFoundError")
        bad_range = http.get(f"/streams/{stream}/raw", params={"start": 10, "end": 5})
        assert (bad_range.status_code, bad_range.json()["error"]) == (400, "InvalidTimeRange")
        bad_width = http.get(f"/streams/{stream}/windows", params={"start": 0, "end": 10, "pointwidth": 99})
        assert bad_width.status_code == 422  # checked by the app's parameter declaration
        assert http.get("/streams/not-a-uuid/count").status_code == 422  # FastAPI's own validation


@pytest.mark.parametrize("server", SERVERS)
def test_streamed_reads_are_complete_and_fail_before_the_body(
    platform: Platform, shared_apps: Callable[[str, str], AppProcess], server: str
) -> None:
    import pyarrow as pa

    stream = platform.stream
    with httpx.Client(base_url=shared_apps(server, "async_app").url, timeout=30) as http:
        lines = http.get(f"/streams/{stream}/raw.ndjson", params={"start": 0, "end": POINTS + 1})
        assert lines.status_code == 200 and len(lines.text.splitlines()) == POINTS
        arrow = http.get(f"/streams/{stream}/raw.arrow", params={"start": 0, "end": POINTS + 1})
        table = pa.ipc.open_stream(arrow.content).read_all()
        assert table.num_rows == POINTS and table.column("time")[-1].value == POINTS
        missing = http.get(f"/streams/{uuid.uuid4()}/raw.ndjson", params={"start": 0, "end": 9})
        assert missing.status_code == 404
        assert http.get(f"/streams/{stream}/raw.arrow", params={"start": 9, "end": 0}).status_code == 400


@pytest.mark.parametrize("server", SERVERS)
def test_a_refused_api_key_is_403(tmp_path: Path, server: str) -> None:
    platform = RestartableServer(tmp_path / "data", api_key="the-right-key-0123456789")
    platform.start()
    try:
        env = _app_env(platform.endpoint, BTRDB_API_KEY="a-wrong-key")
        with serve_app(server, env) as app, httpx.Client(base_url=app.url, timeout=30) as http:
            answer = http.get(f"/streams/{uuid.uuid4()}/count")
            assert (answer.status_code, answer.json()["error"]) == (403, "PermissionDeniedError")
    finally:
        platform.stop()


@pytest.mark.parametrize("server", SERVERS)
def test_a_platform_that_does_not_answer_is_504_at_the_deadline(server: str) -> None:
    with socket.socket() as black_hole:  # accepts TCP connections (backlog) and never answers
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(16)
        endpoint = f"127.0.0.1:{black_hole.getsockname()[1]}"
        with serve_app(server, _app_env(endpoint)) as app, httpx.Client(base_url=app.url, timeout=30) as http:
            started = time.monotonic()
            answer = http.get(f"/streams/{uuid.uuid4()}/count")
            assert (answer.status_code, answer.json()["error"]) == (504, "TimeoutError")
            assert time.monotonic() - started < 5.0


# ------------------------------------------------------------------------------------- outages
@pytest.mark.parametrize("server", SERVERS)
def test_the_app_starts_while_the_platform_is_down_then_recovers(tmp_path: Path, server: str) -> None:
    platform = RestartableServer(tmp_path / "data")
    platform.start()  # once, to learn a free port
    platform.stop()
    try:
        with serve_app(server, _app_env(platform.endpoint)) as app, \
                httpx.Client(base_url=app.url, timeout=30) as http:
            down = http.get(f"/streams/{uuid.uuid4()}/count")
            assert (down.status_code, down.json()["error"]) == (503, "ConnectionError")
            assert down.headers["retry-after"] == "1"
            assert platform.endpoint not in down.text  # 5xx bodies do not show the platform's address
            platform.start()
            assert http.get(f"/streams/{uuid.uuid4()}/count").status_code == 404  # answered by the platform
    finally:
        platform.stop()


async def _keep_alive_load(
    url: str, path: str, clients: int, stop: anyio.Event
) -> tuple[list[int], list[str]]:
    statuses: list[int] = []
    failures: list[str] = []

    async def one_client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:  # one keep-alive connection
            while not stop.is_set():
                try:
                    statuses.append((await http.get(path)).status_code)
                except httpx.TransportError as exc:
                    failures.append(repr(exc))

    async with anyio.create_task_group() as tg:
        for _ in range(clients):
            tg.start_soon(one_client)
    return statuses, failures


@pytest.mark.parametrize("server", SERVERS)
def test_a_platform_restart_under_load_gives_only_503s(platform: Platform, server: str) -> None:
    path = f"/streams/{platform.stream}/count"

    async def scenario(url: str) -> tuple[list[int], list[str], list[int]]:
        stop = anyio.Event()
        result: list[tuple[list[int], list[str]]] = []

        async def load() -> None:
            result.append(await _keep_alive_load(url, path, 8, stop))

        async with anyio.create_task_group() as tg:
            tg.start_soon(load)
            await anyio.sleep(0.5)  # load before the outage
            await anyio.to_thread.run_sync(platform.server.stop)
            await anyio.sleep(0.5)  # load while the platform is down
            await anyio.to_thread.run_sync(platform.server.start)
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                after = [(await http.get(path)).status_code for _ in range(3)]
            stop.set()
        statuses, failures = result[0]
        return statuses, failures, after

    # The app's usual 5 s deadline: the 1 s of the other tests is too short for a platform that is
    # starting up on a machine whose cores the load generator keeps busy.
    env = _app_env(platform.server.endpoint, APP_REQUEST_DEADLINE="5")
    with serve_app(server, env) as app:
        statuses, failures, after = anyio.run(scenario, app.url)
    assert failures == []  # no dropped connections
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    assert statuses.count(503) > 0 and statuses.count(200) > 0
    assert after == [200, 200, 200]


