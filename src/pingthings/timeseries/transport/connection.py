"""One HTTP/2 connection, driven by the tasks that wait on it.

There is no background reader task. A task that needs something from the server (a message, the end of its
stream, send window, a free stream slot) calls :meth:`Connection.wait_until`. If nobody is reading the socket,
that task becomes the reader for one round: it receives up to :data:`READ_SIZE` bytes and feeds them to the
connection's HTTP/2 state (:class:`~.http2_client.ClientProtocol`), which applies every frame to the
per-stream state, all without an ``await`` between receiving and processing, so a cancelled reader never
loses or half-processes a frame. Then it wakes the tasks whose
streams changed. When a reader leaves (satisfied, cancelled or failed) while others still wait, it hands the
reading role to one of them.

Writes go through :meth:`Connection.flush`, which drains the protocol's output buffer under a lock, shielded
from cancellation (a half-written frame would corrupt the connection) but bounded by a write timeout.

Every low-level exception is turned into :class:`~.errors.TransportError` by
:func:`~.errors.translate_errors`; a connection-level failure is recorded once and delivered to every stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import select
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import anyio.streams.tls

from pingthings.wire.http2.frames import ConnectionProtocolError, ErrorCode, error_code

from .backend import Backend, current_backend
from .direct_read import direct_reader, scope_factory
from .direct_write import direct_writer
from .errors import (
    LOW_LEVEL_ERRORS,
    PeerUnresponsiveError,
    TransportError,
    describe,
    to_transport_error,
    translate_errors,
)
from .http2_client import ClientProtocol
from .read_size import read_size_for
from .steady_read import steady_reader
from .stream_state import StreamState
from .tls_buffer import tls_read_buffer

READ_SIZE = 1 << 20
"""Bytes asked from the socket per read round (on plain TCP, while large replies stream in, up to
4 MiB: see :mod:`.read_size`)."""

MIN_PING_SPACING = 300.0
"""Seconds grpc-go and grpc core want between two pings by default. They tolerate two faster pings (their
"ping strikes") and forgive them whenever they send HEADERS or DATA; a third earns GOAWAY
ENHANCE_YOUR_CALM."""

QUIET_PINGS = 2
"""Keepalive pings allowed within :data:`MIN_PING_SPACING` while the server sends no HEADERS or DATA."""

IDLE_CATCH_UP_TIMEOUT = 1.0
"""Seconds allowed to read what arrived on an idle connection before reusing it (the bytes are already
there; only a partial TLS record could make this wait)."""

WRITE_TIMEOUT = 60.0
"""Seconds a single socket write may block before the connection is declared dead."""

#: Streams opened at most before the server's first SETTINGS frame says how many it allows: the
#: smallest limit HTTP/2 recommends servers to allow, and h2's and grpclib's default.
STREAMS_BEFORE_SETTINGS = 100

_MAX_STREAM_ID = 2**31 - 1
_MAX_TLS_RECORD = 16_384 + 256 + 5  # largest TLS ciphertext record, header included


class WaitExpired(Exception):
    """A :meth:`Connection.wait_until` with a deadline reached it first (the caller's call timed out).

    Raised in place of a cancel scope around the whole call: a call's deadline is then checked by the waits
    themselves, and a scope (10-20 µs to enter and leave) is entered only by a task that waits without
    reading the socket.
    """


class Connection:
    """An HTTP/2 client connection carrying gRPC streams.

    Parameters
    ----------
    stream
        A connected byte stream (TCP, or TLS with ALPN h2).
    endpoint
        ``host:port``, for error messages.
    max_frame_size
        Largest DATA frame we accept (SETTINGS_MAX_FRAME_SIZE).
    stream_window, connection_window
        Inbound flow-control windows of each stream and of the connection.
    keepalive_interval
        Seconds of silence while a call waits before a PING checks that the server is alive; None disables.
    max_message_size
        Largest gRPC message accepted.
    """

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        endpoint: str,
        *,
        max_frame_size: int,
        stream_window: int,
        connection_window: int,
        keepalive_interval: float | None,
        max_message_size: int,
    ) -> None:
        self._stream = stream
        #: The anyio backend of the event loop the connection lives on (looked up once, not per call).
        self.backend: Backend = current_backend()
        self._raw_socket = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        self._direct_write = direct_writer(stream)
        self._is_tls = isinstance(stream, anyio.streams.tls.TLSStream)
        self._read_bio = tls_read_buffer(stream) if isinstance(stream, anyio.streams.tls.TLSStream) else None
        self._read_size = None if self._is_tls else read_size_for(stream, READ_SIZE)
        self._steady = steady_reader(stream, None if self._read_size is None else self._read_size.after_read)
        #: How a read round receives: from the steady reader (asyncio, plain TCP), the socket itself
        #: (trio, plain TCP) or anyio's stream.
        self._trio_reader = None if self._steady is not None else direct_reader(stream)
        self._receive: Callable[[int], Awaitable[bytes]] = (
            self._steady.receive
            if self._steady is not None
            else self._trio_reader.receive
            if self._trio_reader is not None
            else stream.receive
        )
        #: The cancel scope that bounds a read round by keepalive and deadline (trio's own on trio).
        self._read_scope = scope_factory(stream, self.backend)
        # With the steady reader (asyncio), keepalive is a timer that nudges a reader waiting too long,
        # armed at most once per interval, instead of a cancel scope around every read.
        self._loop = asyncio.get_running_loop() if self._steady is not None else None
        self._watchdog: asyncio.TimerHandle | None = None
        self._receiving_since: float | None = None
        self.endpoint = endpoint
        self._keepalive = keepalive_interval
        self._proto = ClientProtocol(
            max_frame_size=max_frame_size,
            stream_window=stream_window,
            connection_window=connection_window,
            max_message_size=max_message_size,
            endpoint=endpoint,
        )
        #: The streams of calls still running here, by id (shared with the protocol state).
        self.streams: dict[int, StreamState] = self._proto.streams
        self._poller: Any = None  # a poll object watching the socket, made on first use
        self._send_lock = anyio.Lock()
        self._reading = False
        self._waiters: dict[anyio.Event, int] = {}
        self._failure: TransportError | None = None
        self._goaway = False
        self._goaway_seen: tuple[int, int, bytes] | None = None  # the GOAWAY last acted upon
        self._closed = False
        self._ping_outstanding = False
        self._last_ping: float | None = None
        self._quiet_pings = 0  # pings sent since the server last sent HEADERS or DATA
        self._retire_when_idle = False

    # ------------------------------------------------------------------ status

    @property
    def failure(self) -> TransportError | None:
        """The error that killed the connection, or None while it is alive."""
        return self._failure

    def accepts_new_streams(self) -> bool:
        """True if a new call may start here (alive, no GOAWAY, stream ids left, not closing)."""
        if self._failure is not None or self._goaway or self._closed or self._retire_when_idle:
            return False
        return self._proto.next_stream_id < _MAX_STREAM_ID - 1000

    def ready_now(self) -> bool:
        """True if a new stream may go out at once: streams are taken and nothing waits to be read first."""
        if not self.accepts_new_streams():
            return False
        return bool(self.streams) or self._reading or not self._socket_readable()

    async def ready_for_new_stream(self) -> bool:
        """Like :meth:`accepts_new_streams`, but first catch up with what the server sent while idle.

        Nobody reads an idle connection, so a GOAWAY, an EOF (server restarted) or a harmless PING may be
        waiting in the socket. If it is readable, one read round processes that (briefly: the bytes are
        there), and the connection is judged afterwards.
        """
        if not self.accepts_new_streams():
            return False
        if self.streams or self._reading or not self._socket_readable():
            return True
        self._reading = True
        touched: set[int] | None = None
        try:
            with anyio.move_on_after(IDLE_CATCH_UP_TIMEOUT):
                touched = await self._read_round()
        finally:
            self._reading = False
            self._wake(touched)
        try:
            await self.flush()  # e.g. the PING ACK
        except TransportError:
            return False
        return self.accepts_new_streams()

    def _socket_readable(self) -> bool:
        """True if the socket has bytes or EOF pending (checked without blocking)."""
        if self._steady is not None and self._steady.pending():
            return True  # the transport already read it
        raw = self._raw_socket
        if raw is None:
            return False
        try:
            if hasattr(select, "poll"):  # no FD_SETSIZE limit, unlike select()
                poller = self._poller
                if poller is None:
                    poller = self._poller = select.poll()
                    poller.register(raw, select.POLLIN)
                return bool(poller.poll(0))
            readable, _, _ = select.select([raw], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    # ------------------------------------------------------------------ writing

    async def flush(self) -> None:
        """Send everything queued; shielded from cancellation, bounded by :data:`WRITE_TIMEOUT`.

        Bytes are taken out of the protocol state either by a task that writes them all at once without
        an ``await`` (:meth:`_write_now`) or by the task holding the send lock, so they reach the socket
        in the order they were queued.
        """
        lock = self._send_lock
        if not lock.locked():
            data = self._proto.data_to_send()
            if not data:
                return
            rest = self._write_now(data)
            if rest:
                lock.acquire_nowait()
                try:
                    await self._write(rest)
                finally:
                    lock.release()
        else:
            with anyio.CancelScope(shield=True):
                async with lock:
                    await self._write(self._proto.data_to_send())
        if self._failure is not None:
            raise self._failure.fresh()

    def _write_now(self, data: bytes) -> bytes:
        """Hand ``data`` to the socket without waiting (:mod:`.direct_write`); return what is left."""
        direct = self._direct_write
        if direct is None or self._closed or self._failure is not None:
            return data
        try:
            with translate_errors(self.endpoint, "sending"):
                sent = direct(data)
        except TransportError as exc:
            self.fail(exc)
            return b""
        return data[sent:] if sent else data  # the usual case: everything went, no await, no scope

    async def _write(self, data: bytes) -> None:
        """Write bytes to the socket, shielded; a failure or a blocked write kills the connection."""
        if not data or self._closed or self._failure is not None:
            return
        data = self._write_now(data)
        if not data:
            return
        # The socket is full (rare): one scope, shielded from the caller's cancellation, yet ended by its
        # own deadline, while anyio's send waits to write the rest.
        # (On trio the reader sends: its watcher may wake the socket's waiters, see .direct_read.)
        send = self._stream.send if self._trio_reader is None else self._trio_reader.send
        with anyio.CancelScope(shield=True, deadline=anyio.current_time() + WRITE_TIMEOUT) as scope:
            try:
                with translate_errors(self.endpoint, "sending"):
                    await send(data)
            except TransportError as exc:
                self.fail(exc)
        if scope.cancelled_caught:
            self.fail(TransportError(f"socket write blocked for {WRITE_TIMEOUT:.0f}s", self.endpoint))

    def open_stream(self, header_block: bytes, end_stream: bool) -> StreamState:
        """Start a stream with its encoded request header block (queued; the caller flushes)."""
        if self._failure is not None:
            raise self._failure.fresh()
        return self._proto.open_stream(header_block, end_stream)

    def has_stream_slot(self) -> bool:
        """True if the server's SETTINGS_MAX_CONCURRENT_STREAMS allows one more stream now.

        Until the server's first SETTINGS frame arrives its limit is unknown (HTTP/2 says "no limit"),
        yet a server that limits streams (h2 and grpclib: 100) resets the whole connection when a burst
        exceeds it. So until then at most :data:`STREAMS_BEFORE_SETTINGS` streams are opened.
        """
        return self._proto.has_stream_slot(STREAMS_BEFORE_SETTINGS)

    def send_window(self, state: StreamState) -> int:
        """Bytes of DATA we may send on ``state`` now in one frame (0 if none or the stream is closed)."""
        return self._proto.window_for(state)

    def queue_data(self, state: StreamState, data: memoryview | bytes, end_stream: bool) -> None:
        """Queue DATA (the caller checked the window and flushes)."""
        self._proto.send_data(state, data, end_stream)

    def queue_end_stream(self, state: StreamState) -> None:
        """Queue an empty DATA frame with END_STREAM (half-close the request side)."""
        self._proto.end_stream(state)

    def acknowledge(self, state: StreamState) -> None:
        """Give back the flow-control credit of the bytes the caller has consumed (updates are batched)."""
        if state.unacked:
            self._proto.acknowledge(state)

    async def release(self, state: StreamState, *, reset: bool) -> None:
        """Forget a stream: reset it first if ``reset`` and it is still open, and give back its unread credit.

        It also completes for a call that is being cancelled: its only waits, :meth:`flush` (whose
        socket write and lock wait are shielded) and :meth:`aclose` (shielded), cannot be interrupted, and
        nothing else awaits; so no cancel scope of its own is needed on this per-call path.
        """
        if state.stream_id not in self.streams:
            return
        if reset and not self._closed and self._failure is None:
            self._proto.reset_stream(state, ErrorCode.CANCEL)
        self._proto.forget(state)
        if self._failure is None and not self._closed:
            with contextlib.suppress(TransportError):
                await self.flush()
        self._wake(set())  # a stream slot came free: only the tasks waiting for one need to look
        if self._retire_when_idle and not self.streams:
            await self.aclose()

    def retire(self) -> None:
        """Take no new streams; close once the running ones are done."""
        self._retire_when_idle = True

    # ------------------------------------------------------------------ reading

    async def wait_until(
        self, state: StreamState | None, ready: Callable[[], bool], deadline: float | None = None
    ) -> None:
        """Return once ``ready()`` is true or the connection has failed, driving the socket if nobody else is.

        Parameters
        ----------
        state
            The stream this task waits on (its events wake the task), or None to wait for connection-level
            changes (send window, free stream slots).
        ready
            Condition re-checked after every change.
        deadline
            If given, the event loop's time at which to give up with :class:`WaitExpired`.

        Raises
        ------
        WaitExpired
            ``deadline`` passed first.
        """
        key = 0 if state is None else state.stream_id
        clock = self.backend.current_time
        try:
            while not ready() and self._failure is None:
                if deadline is not None and clock() >= deadline:
                    raise WaitExpired
                if state is not None and state.unacked and not state.messages:
                    # The caller has consumed everything received: give the credit back, or a message
                    # larger than the window could never complete.
                    self.acknowledge(state)
                    await self.flush()
                    continue
                if self._closed:
                    self.fail(TransportError("channel closed", self.endpoint))
                    break
                if self._reading:
                    event = anyio.Event()
                    self._waiters[event] = key
                    try:
                        if deadline is None:
                            await event.wait()
                        else:
                            with self.backend.create_cancel_scope(deadline=deadline):
                                await event.wait()
                    finally:
                        del self._waiters[event]
                    continue
                self._reading = True
                touched: set[int] | None = None
                try:
                    touched = await self._read_round(deadline)
                finally:
                    self._reading = False
                    self._wake(touched)
                await self.flush()
        finally:
            if not self._reading and self._waiters:
                # Hand the reading role to another waiter, since this task stops reading.
                next(iter(self._waiters)).set()

    def _wake(self, touched: set[int] | None) -> None:
        """Wake the waiters of the streams in ``touched`` and the connection-level waiters (all if None)."""
        for event, key in self._waiters.items():
            if touched is None or key == 0 or key in touched:
                event.set()

    async def _read_round(self, deadline: float | None = None) -> set[int] | None:
        """Receive once and dispatch the events; return the stream ids that changed (None: wake everybody).

        Raises :class:`WaitExpired` if ``deadline`` (event-loop time) passes before anything arrives.
        """
        keepalive = self._keepalive
        try:
            size = self._read_size.ask if self._read_size else READ_SIZE
            if keepalive and self._steady is not None:
                with translate_errors(self.endpoint, "receiving"):
                    data = await self._watched_receive(size, deadline)
                if not data:  # a timer nudged this read: the call's deadline, or an interval of silence
                    if deadline is not None and self.backend.current_time() >= deadline:
                        raise WaitExpired
                    self._keepalive_due()
                    return set()
            elif keepalive or deadline is not None:
                # One limit bounds the read by the keepalive interval and the caller's deadline both.
                backend = self.backend
                limit = backend.current_time() + keepalive if keepalive else math.inf
                if deadline is not None and deadline < limit:
                    limit = deadline
                trio_reader = self._trio_reader
                if trio_reader is not None:  # no scope: the reader keeps the limit (see .direct_read)
                    with translate_errors(self.endpoint, "receiving"):
                        data = await trio_reader.receive_until(size, limit)
                    expired = not data
                else:
                    with (
                        self._read_scope(deadline=limit) as scope,
                        translate_errors(self.endpoint, "receiving"),
                    ):
                        data = await self._receive(size)
                    expired = scope.cancelled_caught
                if expired:
                    if deadline is not None and backend.current_time() >= deadline:
                        raise WaitExpired
                    self._keepalive_due()
                    return set()
            else:
                with translate_errors(self.endpoint, "receiving"):
                    data = await self._receive(size)
        except TransportError as exc:
            self.fail(exc)
            return None
        if self._read_size is not None and self._steady is None:
            self._read_size.after_read(len(data))
        if not self._is_tls or len(data) >= READ_SIZE:
            return self._process(data)
        chunks = [data]
        try:
            await self._drain_tls(chunks)
        except BaseException as exc:
            # Whatever interrupted the drain, the bytes already received must not be lost.
            self._process(b"".join(chunks))
            if isinstance(exc, LOW_LEVEL_ERRORS):
                self.fail(to_transport_error(exc, self.endpoint, "receiving"))
                return None
            raise
        return self._process(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _process(self, data: bytes) -> set[int] | None:
        """Feed received bytes to the protocol state (synchronous: never half done)."""
        self._ping_outstanding = False  # any traffic proves the peer is alive
        proto = self._proto
        try:
            touched = proto.receive(data)
        except ConnectionProtocolError as exc:
            self.fail(to_transport_error(exc, self.endpoint, "receiving"))
            return None
        if proto.saw_content:
            proto.saw_content = False
            self._quiet_pings = 0
        if proto.goaway is not None and proto.goaway != self._goaway_seen:
            # Every GOAWAY counts: a graceful shutdown sends one with the largest stream id first and the
            # real last stream later.
            self._goaway_seen = proto.goaway
            self._on_goaway(*proto.goaway)
        return touched

    async def _drain_tls(self, chunks: list[bytes]) -> None:
        """Append to ``chunks`` the TLS records already received and buffered.

        A TLS receive returns one record (at most 16 KiB), and a read round per record costs far more than
        the decryption. While the TLS layer holds more ciphertext than the largest possible record, the next
        receive is normally served from that buffer without waiting. anyio does not publish its buffer
        (see :mod:`.tls_buffer`); without it this does nothing. The caller keeps ``chunks`` safe if a
        receive does wait and gets cancelled.
        """
        read_bio = self._read_bio
        if read_bio is None:
            return
        size = sum(len(chunk) for chunk in chunks)
        while size < READ_SIZE and read_bio.pending > _MAX_TLS_RECORD:
            more = await self._stream.receive(READ_SIZE - size)
            chunks.append(more)
            size += len(more)

    async def _watched_receive(self, size: int, deadline: float | None = None) -> bytes:
        """Receive through the steady reader, with the keepalive timer armed while it waits.

        With a ``deadline`` (loop time) a timer of its own nudges the read then: ``b""`` comes back, as for
        the keepalive timer, and the caller tells the two apart by the time.
        """
        loop = self._loop
        assert loop is not None and self._keepalive is not None
        self._receiving_since = loop.time()
        if self._watchdog is None:
            self._watchdog = loop.call_later(self._keepalive, self._watchdog_fired)
        timer = None if deadline is None else loop.call_at(deadline, self._deadline_fired)
        try:
            return await self._receive(size)
        finally:
            self._receiving_since = None
            if timer is not None:
                timer.cancel()

    def _deadline_fired(self) -> None:
        """A waiting read's deadline timer: get the read back (it returns ``b""`` if nothing came)."""
        if self._receiving_since is not None and self._steady is not None:
            self._steady.nudge()

    def _watchdog_fired(self) -> None:
        """The keepalive timer: nudge a read that has waited a whole interval; re-arm while reads wait."""
        self._watchdog = None
        since, loop, steady, interval = self._receiving_since, self._loop, self._steady, self._keepalive
        if since is None or loop is None or steady is None or interval is None or self._closed:
            return  # nobody is waiting for the server: no pings on an idle connection
        waited = loop.time() - since
        if waited >= interval:
            steady.nudge()
            self._watchdog = loop.call_later(interval, self._watchdog_fired)
        else:
            self._watchdog = loop.call_later(interval - waited, self._watchdog_fired)

    def _keepalive_due(self) -> None:
        """Called after a keepalive interval of silence: ping, or fail if the last ping went unanswered.

        Pings go out only while a call waits (this runs in a read round), never on an idle connection. While
        the server sends no HEADERS or DATA, at most :data:`QUIET_PINGS` pings go out per
        :data:`MIN_PING_SPACING`, which grpc-go and grpc core servers accept by default.
        """
        if self._ping_outstanding:
            self.fail(
                PeerUnresponsiveError(
                    "the server stopped answering: no reply to a keepalive ping within "
                    f"{self._keepalive:g} s",
                    self.endpoint,
                )
            )
            return
        now = anyio.current_time()
        if (
            self._last_ping is None
            or self._quiet_pings < QUIET_PINGS
            or now - self._last_ping >= MIN_PING_SPACING
        ):
            if self._last_ping is not None and now - self._last_ping >= MIN_PING_SPACING:
                self._quiet_pings = 0
            self._last_ping = now
            self._quiet_pings += 1
            self._ping_outstanding = True
            self._proto.ping(b"pingthng")

    def _on_goaway(self, last: int, code: int, debug: bytes) -> None:
        """GOAWAY: no new streams; streams the server never saw fail as refused (safe to retry)."""
        self._goaway = True
        reason = error_code(code)
        name = reason.name if isinstance(reason, ErrorCode) else str(reason)
        detail = f" ({debug.decode(errors='replace')})" if debug else ""
        for state in self.streams.values():
            if state.stream_id > last and not state.finished:
                state.refused = True
                state.error = TransportError(
                    f"server is closing the connection (GOAWAY {name}{detail}) before processing the call",
                    self.endpoint,
                )

    def fail(self, error: TransportError) -> None:
        """Record a connection-level failure and deliver it to every unfinished stream."""
        if self._failure is not None:
            return
        self._failure = error
        for state in self.streams.values():
            if not state.finished:
                state.error = error
        if self._trio_reader is not None:
            self._trio_reader.close()  # its watcher ends; later reads (if any) take a scope
        self._wake(None)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        endpoint: str,
        ssl_context: ssl.SSLContext | None,
        connect_timeout: float | None,
        **options: Any,
    ) -> Connection:
        """Connect (TCP, then TLS with ALPN h2 if ``ssl_context``), send the HTTP/2 preface and settings."""
        action = "connecting" if ssl_context is None else "connecting with TLS"
        stream: anyio.abc.ByteStream | None = None
        try:
            with anyio.fail_after(connect_timeout), translate_errors(endpoint, action):
                if ssl_context is None:
                    stream = await anyio.connect_tcp(host, port)
                else:
                    stream = await anyio.connect_tcp(
                        host, port, ssl_context=ssl_context, tls_hostname=host, tls_standard_compatible=False
                    )
                    alpn = stream.extra(anyio.streams.tls.TLSAttribute.alpn_protocol, None)
                    if alpn not in (None, "h2"):
                        raise TransportError(
                            f"server negotiated ALPN protocol {alpn!r} instead of h2 (is this a gRPC port?)",
                            endpoint,
                        )
                conn = cls(stream, endpoint, **options)
                await conn.flush()
                return conn
        except TimeoutError:
            if stream is not None:
                await anyio.aclose_forcefully(stream)
            raise TransportError(f"could not connect within {connect_timeout}s", endpoint) from None
        except BaseException:
            if stream is not None:
                await anyio.aclose_forcefully(stream)
            raise

    async def aclose(self) -> None:
        """Say GOAWAY and close the socket; unfinished streams fail with "channel closed"."""
        if self._closed:
            return
        with anyio.CancelScope(shield=True):
            if self._failure is None:
                self._proto.close_connection()
                try:
                    with anyio.move_on_after(1.0):
                        await self.flush()
                except TransportError:
                    pass
            self._closed = True
            if self._watchdog is not None:
                self._watchdog.cancel()
                self._watchdog = None
            if self._trio_reader is not None:
                self._trio_reader.close()
            self.fail(TransportError("channel closed", self.endpoint))
            try:
                await anyio.aclose_forcefully(self._stream)
            except Exception as exc:  # closing a broken socket may complain; nothing to report
                _ = describe(exc)
