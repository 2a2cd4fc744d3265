"""The running server inside one asyncio event loop: stores, gRPC listener, retention task.

:class:`ServerRuntime` is what both :class:`pingthings.server.app.Server` (thread or current
loop) and :func:`pingthings.server.app.serve_forever` drive: ``await start()`` then
``await stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

import anyio.to_thread

from pingthings.server.auth import CallTracker, KeyRing, ServerPolicy
from pingthings.server.config import ServerConfig, parse_listen
from pingthings.server.data_lock import DataDirLock
from pingthings.server.engine import Engine
from pingthings.server.grpc.dispatch import MethodTable
from pingthings.server.grpc.shutdown import GrpcServer
from pingthings.server.listener import bind_listener, bound_port
from pingthings.server.metadata import MetadataStore
from pingthings.server.retention import enforce_retention
from pingthings.server.service.btrdb import BTrDBService
from pingthings.server.service.platform import PlatformService
from pingthings.server.service.read_gate import ReadGate
from pingthings.server.service.state import ServiceState
from pingthings.server.service.subscriptions import SubscriptionHub
from pingthings.server.tls import server_ssl_context

log = logging.getLogger("pingthings.server")

ENGINE_FILE = "engine.sqlite"
METADATA_FILE = "metadata.sqlite"
#: Seconds to wait for client connections to close once every call has ended (with the default
#: ``shutdown_grace`` a busy server stops within 10 s of SIGTERM).
CLOSE_TIMEOUT = 3.0


def open_stores(config: ServerConfig) -> tuple[Any, Any]:
    """Open (creating if needed) the engine and metadata files and make them agree.

    Every live stream in the metadata gets a tree in the engine, so a crash between the two
    writes of a Create never leaves a stream that cannot be written. The caller holds the data
    directory's lock (see :func:`lock_data_dir`).
    """
    meta = MetadataStore(config.data_dir / METADATA_FILE, sql_seconds=config.sql_seconds)
    try:
        engine = Engine(
            config.data_dir / ENGINE_FILE, cache_bytes=config.cache_bytes, buffering=config.buffering
        )
    except BaseException:
        meta.close()
        raise
    try:
        for record in meta.lookup_streams("", True, {}, {}, True):
            if not engine.exists(record.uuid):
                engine.create_stream(record.uuid)
    except BaseException:
        engine.close()
        meta.close()
        raise
    return engine, meta


def lock_data_dir(config: ServerConfig) -> DataDirLock:
    """Create the data directory if needed and take its exclusive lock (DataDirLocked if held)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    lock = DataDirLock(config.data_dir)
    lock.acquire()
    return lock


class ServerRuntime:
    """One server's live parts; create, ``await start()``, later ``await stop()``."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.endpoint = ""
        self.engine: Any = None
        self.meta: Any = None
        self._grpc: GrpcServer | None = None
        self.tracker: CallTracker | None = None
        #: The Subscribe pub/sub (None until started).
        self.hub: SubscriptionHub | None = None
        self._retention_task: asyncio.Task[None] | None = None
        self._lock: DataDirLock | None = None

        self._state: ServiceState | None = None

    @property
    def grpc(self) -> GrpcServer | None:
        """The gRPC server (None while stopped)."""
        return self._grpc

    async def start(self) -> None:
        """Bind the listening address, open the stores, serve, and start the retention task.

        The address is bound first, so a server that cannot listen creates nothing on disk.
        """
        config = self.config
        host, port = parse_listen(config.listen)
        ssl_context = None
        if config.tls_cert is not None and config.tls_key is not None:
            ssl_context = server_ssl_context(config.tls_cert, config.tls_key)
        listen_socket = bind_listener(host, port)
        try:
            self._lock = await anyio.to_thread.run_sync(lock_data_dir, config)
            self.engine, self.meta = await anyio.to_thread.run_sync(open_stores, config)
        except BaseException:
            listen_socket.close()
            self._release_lock()
            raise
        try:
            self.hub = SubscriptionHub()
            state = self._state = ServiceState(
                self.engine,
                self.meta,
                self.hub,
                max_insert_points=config.max_insert_points,
                read_gate=ReadGate(config.read_workers),
                max_sql_bytes=config.max_sql_bytes,
                max_streams_per_request=config.max_streams_per_request,
                csv_seconds=config.csv_seconds,
            )
            platform = PlatformService(
                self.meta, self.engine, config.max_streams_per_request, state.read_gate
            )
            methods = MethodTable([BTrDBService(state), platform])
            self.tracker = CallTracker()
            policy = ServerPolicy(KeyRing(config.api_keys), self.tracker, config.data_dir)
            self._grpc = GrpcServer(
                methods,
                policy,
                max_message_bytes=config.max_message_bytes,
                compress_replies=config.compression == "gzip",
            )
            bound = bound_port(listen_socket)
            await self._grpc.start(listen_socket, ssl_context)
            self.endpoint = f"{_host_for_url(host)}:{bound}"
            state.endpoint = config.advertise or _advertised(host, bound)
            self._retention_task = asyncio.get_running_loop().create_task(self._retention_loop())
        except BaseException:
            listen_socket.close()
            await self._close_stores()
            raise
        log.info(
            "pingthings server listening on %s (%s, %s)",
            self.endpoint,
            "TLS" if ssl_context else "plaintext",
            "API keys" if config.api_keys else "no auth",
        )

    async def _retention_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.retention_interval)
            try:
                await anyio.to_thread.run_sync(enforce_retention, self.meta, self.engine, self.config.clock())
            except Exception:
                log.exception("retention pass failed; will retry at the next interval")

    async def stop(self) -> None:
        """Stop gracefully: refuse new calls, let in-flight ones finish, close the stores."""
        grpc = self._grpc
        if grpc is not None and self.tracker is not None:
            self.tracker.draining = True  # new calls are refused with UNAVAILABLE
            grpc.stop_accepting()  # existing connections and calls continue
            if self.hub is not None:
                self.hub.close()
            if not await self.tracker.wait_idle(self.config.shutdown_grace):
                log.warning(
                    "%d calls still running after %.1f s; cancelling them",
                    self.tracker.active,
                    self.config.shutdown_grace,
                )
                if self.meta is not None:
                    self.meta.interrupt_queries()  # a query holds its worker thread until it ends
            grpc.close()  # GOAWAY, cancel what still runs, close the connections
            if not await grpc.wait_closed(CLOSE_TIMEOUT):
                log.warning(
                    "client connections still open %.0f s after shutdown; dropped them", CLOSE_TIMEOUT
                )
            await self.tracker.wait_idle(CLOSE_TIMEOUT)  # the cancelled calls unwind
            self._grpc = None
        if self._retention_task is not None:
            self._retention_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention_task
            self._retention_task = None
        await self._close_stores()

    async def _close_stores(self) -> None:
        if self._state is not None and self._state.activity is not None:
            await self._state.activity.wait()  # the last inserts' activity columns
        engine, meta = self.engine, self.meta
        self.engine = self.meta = None
        if engine is not None:
            await anyio.to_thread.run_sync(engine.close)
        if meta is not None:
            await anyio.to_thread.run_sync(meta.close)
        self._release_lock()

    def _release_lock(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()


def _advertised(host: str, port: int) -> str:
    """What Info reports when no address is configured: wildcards become the host name."""
    if host in ("", "0.0.0.0", "::"):
        return f"{socket.gethostname()}:{port}"
    return f"{_host_for_url(host)}:{port}"


def _host_for_url(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
