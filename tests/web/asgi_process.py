"""The example apps served by uvicorn (asyncio) or hypercorn (trio) in a subprocess.

The test process binds the listening socket on 127.0.0.1 port 0 and hands it to the server
process, so the port is known before the process starts and never raced for.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples" / "web"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0

SERVERS = ("uvicorn", "hypercorn-trio")


@dataclass(frozen=True)
class AppProcess:
    """A running app: its base URL and process."""

    url: str
    process: subprocess.Popen[bytes]


def _command(server: str, fd: int) -> list[str]:
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "--fd", str(fd), "--log-level", "warning",
                "--no-access-log", "tests.web.instrumented:app"]
    if server == "hypercorn-trio":
        return [sys.executable, "-m", "hypercorn", "--worker-class", "trio", "--bind", f"fd://{fd}",
                "--log-level", "warning", "tests.web.instrumented:app"]
    raise ValueError(f"unknown server {server!r}")


@contextmanager
def serve_app(
    server: str, env: Mapping[str, str], example: str = "async_app", module_dirs: Sequence[Path] = ()
) -> Iterator[AppProcess]:
    """Run ``example`` (a module of docs/examples/web) on ``server``; stop it on exit.

    Parameters
    ----------
    server
        ``"uvicorn"`` or ``"hypercorn-trio"``.
    env
        Extra environment: ``BTRDB_ENDPOINTS``, ``APP_REQUEST_DEADLINE``, ...
    example
        The example module.
    module_dirs
        More directories for ``PYTHONPATH``, where ``example`` may live (the bench's apps).
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    full_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(EXAMPLES), *map(str, module_dirs)]),
        "APP_EXAMPLE": example,
        **env,
    }
    process = subprocess.Popen(_command(server, fd), pass_fds=(fd,), env=full_env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    listener.close()  # the child holds its own copy
    app = AppProcess(f"http://127.0.0.1:{port}", process)
    try:
        _wait_until_healthy(app)
        yield app
    finally:
        stop_app(app)


def _wait_until_healthy(app: AppProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(base_url=app.url, timeout=5) as http:
        while time.monotonic() < deadline:
            if app.process.poll() is not None:
                err = app.process.stderr.read().decode(errors="replace") if app.process.stderr else ""
                raise RuntimeError(f"the app exited with {app.process.returncode}: {err[-2000:]}")
            try:
                if http.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass  # the app accepts connections only once its lifespan started
            time.sleep(0.05)
    raise TimeoutError("the app did not answer /healthz in time")


def stop_app(app: AppProcess) -> float:
    """Stop the app with SIGTERM and return how many seconds that took (SIGKILL after 20 s)."""
    started = time.monotonic()
    if app.process.poll() is None:
        app.process.terminate()
        try:
            app.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            app.process.kill()
            app.process.wait()
    if app.process.stderr is not None:
        app.process.stderr.close()
    return time.monotonic() - started
