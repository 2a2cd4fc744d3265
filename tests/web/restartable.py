"""The embedded server in its own process, stopped and started again on the same port.

Outage tests run the server as ``pingthings serve`` in a subprocess, as a deployment would: when it
stops, the operating system closes its sockets, so clients see the restart the way they would see a
real one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

READY_PREFIX = "pingthings server listening on "
STOP_TIMEOUT = 60.0


class RestartableServer:
    """``pingthings serve`` on 127.0.0.1: the port is chosen by the system at the first start and
    kept for every later start, with the same data directory.

    Parameters
    ----------
    data_dir
        The server's data directory.
    api_key
        The one API key the server accepts (None: no auth).
    """

    def __init__(self, data_dir: Path, api_key: str | None = None) -> None:
        self._data_dir = data_dir
        self._api_key = api_key
        self._port = 0
        self._process: subprocess.Popen[str] | None = None

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT`` (known after the first start)."""
        if not self._port:
            raise RuntimeError("start the server once to learn its port")
        return f"127.0.0.1:{self._port}"

    @property
    def running(self) -> bool:
        """Whether the server process is serving now."""
        return self._process is not None

    def start(self) -> None:
        """Start the server process and return once it listens (on the port of the first start)."""
        if self._process is not None:
            raise RuntimeError("already running")
        command = [sys.executable, "-m", "pingthings.cli.main", "serve", "--data", str(self._data_dir),
                   "--listen", f"127.0.0.1:{self._port}", "--cache-mb", "32"]
        if self._api_key is not None:
            command += ["--api-key", self._api_key]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                   env=env)
        assert process.stdout is not None
        for line in process.stdout:  # the first line says where it listens (or EOF when it failed)
            if line.startswith(READY_PREFIX):
                self._port = int(line[len(READY_PREFIX):].strip().rsplit(":", 1)[1])
                self._process = process
                return
        process.wait(STOP_TIMEOUT)
        raise RuntimeError(f"pingthings serve exited with {process.returncode} before listening")

    def pause(self) -> None:
        """Freeze the server process (SIGSTOP): connections stay open, nothing is answered."""
        if self._process is None:
            raise RuntimeError("not running")
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server process run again (SIGCONT)."""
        if self._process is None:
            raise RuntimeError("not running")
        self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server with SIGTERM (a graceful stop) and wait for the process (idempotent)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGCONT)  # in case it was paused
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
