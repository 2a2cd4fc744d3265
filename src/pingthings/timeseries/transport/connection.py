"""One HTTP/2 connection, driven by the tasks that wait on it.

There is no background reader task. A task that needs something from the server (a message, the end of its
stream, send window, a free stream slot) calls :meth:`Connection.wait_until`. If nobody is reading the socket,
that task becomes the reader for one round: it receives up to :data:`READ_SIZE` bytes, feeds them to h2 and
dispatches every resulting event to the per-stream state, all without an ``await`` between receiving and
dispatching, so a cancelled reader never loses or half-processes a frame. Then it wakes the tasks whose
streams changed. When a reader leaves (satisfied, cancelled or failed) while others still wait, it hands the
reading role to one of them.

Writes go through :meth:`Connection.flush`, which drains h2's output buffer under a lock, shielded from
cancellation (a half-written frame would corrupt the connection) but bounded by a write timeout.

Every low-level exception is turned into :class:`~.errors.TransportError` by
:func:`~.errors.translate_errors`; a connection-level failure is recorded once and delivered to every stream.
"""

from __future__ import annotations

import select
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
import anyio.streams.tls
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes

from . import frame_buffer, goaway_drain
from .errors import (
    LOW_LEVEL_ERRORS,
    PeerUnresponsiveError,
    TransportError,
    describe,
    to_transport_error,
    translate_errors,
)
from .framing import MessageReader
from .header_encoder import CachingHeaderEncoder
from .tls_buffer import tls_read_buffer

READ_SIZE = 1 << 20
"""Bytes asked from the socket per read round."""

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


def _reply_encoding(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The ``grpc-encoding`` of a reply's headers (None when absent)."""
    for name, value in headers:
        if name == b"grpc-encoding":
            return value
    return None


class StreamState:
    """Everything the connection knows about one of its streams; the call objects read it.

    Attributes are written by the reader task (from h2 events) and read by the call that owns the stream.
    """

    __slots__ = (
        "ended",
        "error",
        "headers",
        "messages",
        "reader",
        "refused",
        "reset_code",
        "stream_id",
        "trailers",
        "unacked",
    )

    def __init__(self, stream_id: int, max_message_size: int) -> None:
        self.stream_id = stream_id
        self.headers: list[tuple[bytes, bytes]] | None = None
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.messages: deque[bytes | memoryview] = deque()
        self.reader = MessageReader(max_message_size)
        self.ended = False
        self.reset_code: int | None = None
        self.error: BaseException | None = None
        self.refused = False
        self.unacked = 0

    @property
    def finished(self) -> bool:
        """True once the server will send nothing more on this stream."""
        return self.ended or self.reset_code is not None or self.error is not None


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
        self._raw_socket = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        self._is_tls = isinstance(stream, anyio.streams.tls.TLSStream)
        self._read_bio = tls_read_buffer(stream) if isinstance(stream, anyio.streams.tls.TLSStream) else None
        self.endpoint = endpoint
        self._keepalive = keepalive_interval
        self._max_message_size = max_message_size
        # Our request headers are built and validated by metadata.py, so h2 need not re-check them per call;
        # replies are still validated.
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self._h2 = h2.connection.H2Connection(config=config)
        self._h2.encoder = CachingHeaderEncoder()  # type: ignore[assignment]
        frame_buffer.install(self._h2)
        goaway_drain.allow_draining(self._h2)
        #: Whether the server's first SETTINGS frame has arrived (until then its stream limit is unknown).
        self._settings_known = False
        self._h2.initiate_connection()
        self._h2.update_settings(
            {
                h2.settings.SettingCodes.MAX_FRAME_SIZE: max_frame_size,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: stream_window,
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
            }
        )
        # h2 applies a new inbound frame-size limit only when the server ACKs it, and reads the limit only at
        # the start of receive_data(): an ACK followed by a big DATA frame in one read would fail. Accepting
        # large frames right away is safe since we announced the setting before anything else.
        self._h2.max_inbound_frame_size = max_frame_size
        self._h2.increment_flow_control_window(connection_window - 65_535)
        self.streams: dict[int, StreamState] = {}
        self._send_lock = anyio.Lock()
        self._reading = False
        self._waiters: dict[anyio.Event, int] = {}
        self._failure: TransportError | None = None
        self._goaway = False
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
        highest = self._h2.highest_outbound_stream_id
        return highest is None or highest < _MAX_STREAM_ID - 1000

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
        raw = self._raw_socket
        if raw is None:
            return False
        try:
            if hasattr(select, "poll"):  # no FD_SETSIZE limit, unlike select()
                poller = select.poll()
                poller.register(raw, select.POLLIN)
                return bool(poller.poll(0))
            readable, _, _ = select.select([raw], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    # ------------------------------------------------------------------ writing

    async def flush(self) -> None:
        """Send everything h2 has queued; shielded from cancellation, bounded by :data:`WRITE_TIMEOUT`.

        Bytes are always taken out of h2 by the task holding the send lock, so they reach the socket in the
        order h2 produced them.
        """
        lock = self._send_lock
        if not lock.locked():
            data = self._h2.data_to_send()
            if not data:
                return
            lock.acquire_nowait()
            try:
                await self._write(data)
            finally:
                lock.release()
        else:
            with anyio.CancelScope(shield=True):
                async with lock:
                    await self._write(self._h2.data_to_send())
        if self._failure is not None:
            raise self._failure.fresh()

    async def _write(self, data: bytes) -> None:
        """Write bytes to the socket, shielded; a failure or a blocked write kills the connection."""
        if not data or self._closed or self._failure is not None:
            return
        # One scope: shielded from the caller's cancellation, yet ended by its own deadline.
        with anyio.CancelScope(shield=True, deadline=anyio.current_time() + WRITE_TIMEOUT) as scope:
            try:
                with translate_errors(self.endpoint, "sending"):
                    await self._stream.send(data)
            except TransportError as exc:
                self.fail(exc)
        if scope.cancelled_caught:
            self.fail(TransportError(f"socket write blocked for {WRITE_TIMEOUT:.0f}s", self.endpoint))

    def open_stream(self, headers: list[tuple[bytes, bytes]], end_stream: bool) -> StreamState:
        """Start a stream with its request headers (queued; the caller flushes)."""
        if self._failure is not None:
            raise self._failure.fresh()
        stream_id = self._h2.get_next_available_stream_id()
        state = StreamState(stream_id, self._max_message_size)
        with translate_errors(self.endpoint, "opening a stream"):
            self._h2.send_headers(stream_id, headers, end_stream=end_stream)
        self.streams[stream_id] = state
        return state

    def has_stream_slot(self) -> bool:
        """True if the server's SETTINGS_MAX_CONCURRENT_STREAMS allows one more stream now.

        Until the server's first SETTINGS frame arrives its limit is unknown (HTTP/2 says "no limit"),
        yet a server that limits streams (h2 and grpclib: 100) resets the whole connection when a burst
        exceeds it. So until then at most :data:`STREAMS_BEFORE_SETTINGS` streams are opened.
        """
        limit = self._h2.remote_settings.max_concurrent_streams
        if not self._settings_known:
            limit = min(limit, STREAMS_BEFORE_SETTINGS)
        return self._h2.open_outbound_streams < limit

    def send_window(self, state: StreamState) -> int:
        """Bytes of DATA we may send on ``state`` now (0 if none or if the stream is closed for sending)."""
        try:
            window = self._h2.local_flow_control_window(state.stream_id)
        except h2.exceptions.H2Error:
            return 0
        return min(window, self._h2.max_outbound_frame_size)

    def queue_data(self, state: StreamState, data: memoryview | bytes, end_stream: bool) -> None:
        """Queue a DATA frame (the caller checked the window and flushes)."""
        with translate_errors(self.endpoint, "sending data"):
            self._h2.send_data(state.stream_id, data, end_stream=end_stream)

    def queue_end_stream(self, state: StreamState) -> None:
        """Queue an empty DATA frame with END_STREAM (half-close the request side)."""
        with translate_errors(self.endpoint, "ending the request stream"):
            self._h2.end_stream(state.stream_id)

    def acknowledge(self, state: StreamState) -> None:
        """Give back the flow-control credit of the bytes the caller has consumed (h2 batches the updates)."""
        if state.unacked:
            amount, state.unacked = state.unacked, 0
            with translate_errors(self.endpoint, "updating the flow-control window"):
                self._h2.acknowledge_received_data(amount, state.stream_id)

    async def release(self, state: StreamState, *, reset: bool) -> None:
        """Forget a stream: reset it first if ``reset`` and it is still open, and give back its unread credit.

        It also completes for a call that is being cancelled: its only waits, :meth:`flush` (whose
        socket write and lock wait are shielded) and :meth:`aclose` (shielded), cannot be interrupted, and
        nothing else awaits; so no cancel scope of its own is needed on this per-call path.
        """
        if self.streams.pop(state.stream_id, None) is None:
            return
        try:
            if reset and not self._closed and self._failure is None:
                stream = self._h2.streams.get(state.stream_id)
                if stream is not None and not stream.closed:
                    with translate_errors(self.endpoint, "cancelling a stream"):
                        self._h2.reset_stream(state.stream_id, ErrorCodes.CANCEL)
            if self._failure is None and not self._closed:
                self.acknowledge(state)
                await self.flush()
        except TransportError:
            pass
        self._wake(None)
        if self._retire_when_idle and not self.streams:
            await self.aclose()

    def retire(self) -> None:
        """Take no new streams; close once the running ones are done."""
        self._retire_when_idle = True

    # ------------------------------------------------------------------ reading

    async def wait_until(self, state: StreamState | None, ready: Callable[[], bool]) -> None:
        """Return once ``ready()`` is true or the connection has failed, driving the socket if nobody else is.

        Parameters
        ----------
        state
            The stream this task waits on (its events wake the task), or None to wait for connection-level
            changes (send window, free stream slots).
        ready
            Condition re-checked after every change.
        """
        key = 0 if state is None else state.stream_id
        try:
            while not ready() and self._failure is None:
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
                        await event.wait()
                    finally:
                        del self._waiters[event]
                    continue
                self._reading = True
                touched: set[int] | None = None
                try:
                    touched = await self._read_round()
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

    async def _read_round(self) -> set[int] | None:
        """Receive once and dispatch the events; return the stream ids that changed (None: wake everybody)."""
        timeout = self._keepalive if self._keepalive else None
        try:
            with anyio.move_on_after(timeout) as scope, translate_errors(self.endpoint, "receiving"):
                data = await self._stream.receive(READ_SIZE)
        except TransportError as exc:
            self.fail(exc)
            return None
        if scope.cancelled_caught:
            self._keepalive_due()
            return set()
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
        """Feed received bytes to h2 and dispatch the events (synchronous: never half done)."""
        self._ping_outstanding = False  # any traffic proves the peer is alive
        try:
            with translate_errors(self.endpoint, "receiving"):
                events = self._h2.receive_data(data)
        except TransportError as exc:
            self.fail(exc)
            return None
        return self._dispatch(events)

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
            try:
                self._h2.ping(b"pingthng")
            except h2.exceptions.H2Error as exc:
                self.fail(to_transport_error(exc, self.endpoint, "sending a keepalive ping"))

    def _dispatch(self, events: list[h2.events.Event]) -> set[int] | None:
        """Apply h2 events to the stream states; return the changed stream ids (None: everybody)."""
        touched: set[int] = set()
        wake_all = False
        streams = self.streams
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                state = streams.get(event.stream_id)
                if state is None:
                    if event.flow_controlled_length:
                        self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    continue
                self._quiet_pings = 0
                state.unacked += event.flow_controlled_length
                try:
                    state.messages.extend(state.reader.feed(event.data))
                except ValueError as exc:
                    state.error = TransportError(f"invalid gRPC framing: {exc}", self.endpoint)
                    stream = self._h2.streams.get(event.stream_id)
                    if stream is not None and not stream.closed:
                        self._h2.reset_stream(event.stream_id, ErrorCodes.PROTOCOL_ERROR)
                touched.add(event.stream_id)
            elif isinstance(event, h2.events.ResponseReceived):
                self._quiet_pings = 0
                state = streams.get(event.stream_id)
                if state is not None:
                    state.headers = event.headers
                    state.reader.set_encoding(_reply_encoding(event.headers))
                    touched.add(event.stream_id)
            elif isinstance(event, h2.events.TrailersReceived):
                state = streams.get(event.stream_id)
                if state is not None:
                    state.trailers = event.headers
                    touched.add(event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                state = streams.get(event.stream_id)
                if state is not None:
                    state.ended = True
                    touched.add(event.stream_id)
                wake_all = True  # a stream slot became free
            elif isinstance(event, h2.events.StreamReset):
                state = streams.get(event.stream_id)
                if state is not None:
                    state.reset_code = int(event.error_code)
                    state.refused = event.error_code == ErrorCodes.REFUSED_STREAM and state.headers is None
                    touched.add(event.stream_id)
                wake_all = True
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._on_goaway(event)
                wake_all = True
            elif isinstance(event, h2.events.PingAckReceived):
                self._ping_outstanding = False
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                self._settings_known = True
                wake_all = True
            elif isinstance(event, h2.events.WindowUpdated):
                wake_all = True
        return None if wake_all else touched

    def _on_goaway(self, event: h2.events.ConnectionTerminated) -> None:
        """GOAWAY: no new streams; streams the server never saw fail as refused (safe to retry)."""
        self._goaway = True
        last = event.last_stream_id if event.last_stream_id is not None else 0
        try:
            reason = ErrorCodes(int(event.error_code or 0)).name
        except ValueError:
            reason = str(event.error_code)
        detail = f" ({event.additional_data.decode(errors='replace')})" if event.additional_data else ""
        for state in self.streams.values():
            if state.stream_id > last and not state.finished:
                state.refused = True
                state.error = TransportError(
                    f"server is closing the connection (GOAWAY {reason}{detail}) before processing the call",
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
                try:
                    self._h2.close_connection()
                    with anyio.move_on_after(1.0):
                        await self.flush()
                except (TransportError, h2.exceptions.H2Error):
                    pass
            self._closed = True
            self.fail(TransportError("channel closed", self.endpoint))
            try:
                await anyio.aclose_forcefully(self._stream)
            except Exception as exc:  # closing a broken socket may complain; nothing to report
                _ = describe(exc)
