"""The embedded server's public face: :class:`Server` and :func:`serve_forever`.

``with Server(data_dir) as srv:`` runs the server in a background thread with its own asyncio
loop; ``async with Server(data_dir) as srv:`` runs it in the current asyncio loop (under trio,
which the asyncio-based gRPC layer cannot serve on, it falls back to the background thread). ``serve_forever``
blocks until SIGTERM or SIGINT and then stops gracefully.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

import anyio.to_thread

from pingthings.server.config import DEFAULT_CACHE_MB, ServerConfig, load_keys_file, normalize_keys
from pingthings.server.engine.buffering import DEFAULT_BUFFERING, Buffering
from pingthings.server.limits import (
    DEFAULT_CSV_SECONDS,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_SQL_BYTES,
    DEFAULT_MAX_STREAMS_PER_REQUEST,
    DEFAULT_SHUTDOWN_GRACE,
    DEFAULT_SQL_SECONDS,
)
from pingthings.server.malloc_tuning import keep_freed_memory
from pingthings.server.runtime import ServerRuntime
from pingthings.server.service.state import DEFAULT_MAX_INSERT_POINTS

log = logging.getLogger("pingthings.server")


class Server:
    """An embedded BTrDB-v5-compatible server.

    Parameters
    ----------
    data_dir
        Directory for ``engine.sqlite`` and ``metadata.sqlite`` (created if missing).
    listen
        ``HOST:PORT``; the default port 0 picks a free port (see :attr:`endpoint`).
    api_keys
        Accepted keys: an iterable of keys, or a mapping key → admin flag. None: no auth.
    tls
        ``(certificate_path, key_path)`` to serve TLS, or None.
    keys_file
        YAML keys file, merged with ``api_keys``.
    allow_insecure_public
        Permit a non-loopback ``listen`` without keys.
    retention_interval, clock, max_insert_points, shutdown_grace, advertise, cache_mb, read_workers, buffering
        See :class:`~pingthings.server.config.ServerConfig`.
    compression
        ``"gzip"`` to compress replies for clients that accept it (see
        :class:`~pingthings.server.config.ServerConfig`).
    max_message_bytes, max_sql_bytes, max_streams_per_request, sql_seconds, csv_seconds
        Per-request bounds; see :class:`~pingthings.server.config.ServerConfig`.
    config
        A complete configuration; when given, the other arguments must be left at their defaults.
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        listen: str = "127.0.0.1:0",
        api_keys: Mapping[str, bool] | Iterable[str] | None = None,
        tls: tuple[str | Path, str | Path] | None = None,
        *,
        keys_file: str | Path | None = None,
        allow_insecure_public: bool = False,
        retention_interval: float = 3600.0,
        clock: Callable[[], int] = time.time_ns,
        max_insert_points: int = DEFAULT_MAX_INSERT_POINTS,
        shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE,
        advertise: str | None = None,
        cache_mb: int = DEFAULT_CACHE_MB,
        read_workers: int | None = None,
        buffering: Buffering | None = DEFAULT_BUFFERING,
        config: ServerConfig | None = None,
        compression: str | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_sql_bytes: int = DEFAULT_MAX_SQL_BYTES,
        max_streams_per_request: int = DEFAULT_MAX_STREAMS_PER_REQUEST,
        sql_seconds: float = DEFAULT_SQL_SECONDS,
        csv_seconds: float = DEFAULT_CSV_SECONDS,
    ) -> None:
        if config is None:
            if data_dir is None:
                raise TypeError("Server needs a data_dir (or a config)")
            keys = normalize_keys(api_keys)
            if keys_file is not None:
                keys.update(load_keys_file(keys_file))
            config = ServerConfig(
                data_dir=Path(data_dir),
                listen=listen,
                api_keys=keys,
                tls_cert=Path(tls[0]) if tls else None,
                tls_key=Path(tls[1]) if tls else None,
                allow_insecure_public=allow_insecure_public,
                retention_interval=retention_interval,
                clock=clock,
                max_insert_points=max_insert_points,
                shutdown_grace=shutdown_grace,
                advertise=advertise,
                cache_mb=cache_mb,
                read_workers=read_workers,
                compression=compression,
                max_message_bytes=max_message_bytes,
                max_sql_bytes=max_sql_bytes,
                max_streams_per_request=max_streams_per_request,
                sql_seconds=sql_seconds,
                csv_seconds=csv_seconds,
                buffering=buffering,
            )
        self.config = config
        self._runtime: ServerRuntime | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._in_thread = False

    @property
    def endpoint(self) -> str:
        """``host:port`` clients connect to (valid while the server runs)."""
        if self._runtime is None or not self._runtime.endpoint:
            raise RuntimeError("the server is not running")
        return self._runtime.endpoint

    @property
    def runtime(self) -> ServerRuntime:
        """The live parts (engine, metadata store, subscription hub) of the running server."""
        if self._runtime is None:
            raise RuntimeError("the server is not running")
        return self._runtime

    @property
    def running(self) -> bool:
        """Whether the server is currently serving."""
        return self._runtime is not None

    # -- background thread -------------------------------------------------------------------

    def start(self) -> None:
        """Start serving in a background thread; returns once the server listens."""
        if self._runtime is not None:
            raise RuntimeError("the server is already running")
        ready = threading.Event()
        failure: list[BaseException] = []
        runtime = ServerRuntime(self.config)

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop_event = asyncio.Event()
            try:
                await runtime.start()
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            try:
                await self._stop_event.wait()
            finally:
                await runtime.stop()

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:  # pragma: no cover - reported by stop()/logs
                log.exception("server thread crashed")
                failure.append(exc)
                ready.set()

        self._thread = threading.Thread(target=run, name="pingthings-server", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        self._runtime = runtime
        self._in_thread = True

    def stop(self) -> None:
        """Stop the background-thread server gracefully and wait for it."""
        thread, loop, event = self._thread, self._loop, self._stop_event
        if thread is None or loop is None or event is None:
            return
        loop.call_soon_threadsafe(event.set)
        thread.join()
        self._thread = self._loop = self._stop_event = None
        self._runtime = None
        self._in_thread = False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- current event loop ------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._runtime is not None:
            raise RuntimeError("the server is already running")
        if not _in_asyncio():
            await anyio.to_thread.run_sync(self.start)
            return self
        runtime = ServerRuntime(self.config)
        await runtime.start()
        self._runtime = runtime
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._in_thread:
            await anyio.to_thread.run_sync(self.stop)
            return
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            await runtime.stop()


def _in_asyncio() -> bool:
    """Whether the caller runs in an asyncio event loop (the gRPC layer serves only there)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def serve_forever(config: ServerConfig) -> None:
    """Run a server in the calling thread until SIGTERM or SIGINT, then stop gracefully.

    In-flight calls get ``config.shutdown_grace`` seconds to finish; everything they
    committed is on disk when this returns. The process's allocator keeps freed memory for
    later calls (see :mod:`.malloc_tuning`): this process is the server's own.
    """
    keep_freed_memory()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        runtime = ServerRuntime(config)
        await runtime.start()
        print(f"pingthings server listening on {runtime.endpoint}", flush=True)
        try:
            await stop.wait()
            log.info("stopping: waiting for in-flight calls")
        finally:
            await runtime.stop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)

    asyncio.run(main())
