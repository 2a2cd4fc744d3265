"""One gRPC call on a :class:`~.connection.Connection`: send request messages, receive replies, final status.

A call owns one HTTP/2 stream. Its deadline bounds every wait the call makes (connecting, waiting for send
window, waiting for replies); when it passes, the stream is reset and ``GrpcStatusError(DEADLINE_EXCEEDED)``
is raised. Leaving a call before the server finished it (cancellation, ``break``, an exception) resets the
stream with CANCEL and leaves the connection usable.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio

from pingthings.wire.http2.frames import ErrorCode, error_code

from .backend import Backend
from .compression import compress_request
from .connection import Connection, WaitExpired
from .errors import GrpcStatus, GrpcStatusError, TransportError
from .framing import PREFIX
from .metadata import check_response_headers, encode_timeout_header, header_dict, response_status
from .stream_state import StreamState

if TYPE_CHECKING:
    from types import TracebackType

T = TypeVar("T")


class CallSite(Protocol):
    """What a call needs from the channel that starts it: where it goes, and a connection to go on."""

    endpoint: str

    def backend(self) -> Backend:
        """The anyio backend of the running event loop."""
        ...

    async def connection(self) -> Connection:
        """The connection a new call should use (opened or replaced as needed)."""
        ...

    def ready_connection(self) -> Connection | None:
        """The current connection if a call can start on it without waiting, else None."""
        ...

    def request_block(self, method: str, metadata: list[tuple[bytes, bytes]]) -> bytes:
        """The encoded request header block of a call to ``method`` with ``metadata``, without
        ``grpc-timeout``."""
        ...

    @property
    def request_compression(self) -> str | None:
        """``"gzip"`` when request messages are compressed, None when they go as they are."""
        ...


_FLUSH_EVERY = 1 << 20  # bytes of request DATA queued before writing them out


_PLAIN_REPLY_HEADERS = (
    [(b":status", b"200"), (b"content-type", b"application/grpc")],
    [(b":status", b"200"), (b"content-type", b"application/grpc+proto")],
)
"""The reply headers of most gRPC servers, accepted without building a dict."""

_OK_TRAILERS = [(b"grpc-status", b"0")]
"""The trailers of a successful call from most servers."""


def _copy_error(error: BaseException) -> BaseException:
    """A fresh instance of a stored error, so each task raising it gets its own traceback."""
    return error.fresh() if isinstance(error, TransportError) else error


def _has_news(state: StreamState) -> Callable[[], bool]:
    """Condition: a reply message is queued or the stream is over."""
    return lambda: bool(state.messages) or state.finished


class Call:
    """Base of the three call shapes; not used directly.

    Parameters
    ----------
    channel
        The channel that supplies connections (any :class:`CallSite`).
    method
        ``/package.Service/Method``.
    timeout
        Seconds for the whole call, or None.
    idle_timeout
        Seconds each wait of the call (for the connection, send window or the next reply message) may
        take, or None. Unlike ``timeout`` it is not sent to the server: it bounds silence, not the call.
    metadata
        Extra header pairs for this call (already validated and encoded).
    replay
        The request message of a unary or server-streaming call, kept so that a call the server refused
        before processing it (GOAWAY, REFUSED_STREAM) can be sent again once on a new connection.
    """

    def __init__(
        self,
        channel: CallSite,
        method: str,
        timeout: float | None,
        metadata: list[tuple[bytes, bytes]],
        replay: bytes | memoryview | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        self._channel = channel
        self._method = method
        self._timeout = timeout
        self._idle_timeout = idle_timeout
        self._metadata = metadata
        self._backend = backend = channel.backend()
        self._deadline = None if timeout is None else backend.current_time() + timeout
        self._replay = replay
        self._retried = False
        #: The deadline the call's waits check themselves (see :meth:`_unscoped`); None under a scope.
        self._wait_deadline: float | None = None
        self._conn: Connection | None = None
        self._state: StreamState | None = None
        self._headers_checked = False
        self._done = False
        self._send_closed = False

    @property
    def _endpoint(self) -> str:
        return self._channel.endpoint

    # ------------------------------------------------------------------ deadline

    def _step_deadline(self) -> tuple[float | None, float]:
        """The deadline of the next step (the call's, or the idle limit from now if sooner; None: none) and
        the idle limit alone (inf without one)."""
        idle = self._idle_timeout
        if idle is None:
            return self._deadline, math.inf
        idle_deadline = self._backend.current_time() + idle
        step = idle_deadline if self._deadline is None else min(self._deadline, idle_deadline)
        return step, idle_deadline

    async def _expired(self, idle_deadline: float) -> GrpcStatusError:
        """Reset the stream after a step ran out of time; the error saying which limit it was."""
        await self._release(reset=True)
        if self._deadline is not None and self._deadline <= idle_deadline:
            return self._deadline_error()
        return GrpcStatusError(
            GrpcStatus.DEADLINE_EXCEEDED,
            f"no reply message within {self._idle_timeout:g}s",
            self._endpoint,
            self._method,
        )

    async def _bounded(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``func(*args)`` under the step's deadline; on expiry reset the stream and raise status 4."""
        deadline, idle_deadline = self._step_deadline()
        if deadline is None:
            return await func(*args)
        with self._backend.create_cancel_scope(deadline=deadline):
            return await func(*args)
        raise await self._expired(idle_deadline)

    async def _unscoped(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        """:meth:`_bounded` without a cancel scope, for a call on a connection that was ready for it.

        ``func``'s waits (:meth:`Connection.wait_until`) check the step's deadline themselves. Entering and
        leaving a scope costs 14 µs on asyncio and 15-21 µs on trio, a good part of a small call
        (``docs/architecture.md``). Only waits that never connect may run here (a connect is bounded only by
        a scope: :meth:`_retry_if_refused` takes one).
        """
        deadline, idle_deadline = self._step_deadline()
        if deadline is None:
            return await func(*args)
        self._wait_deadline = deadline
        try:
            return await func(*args)
        except WaitExpired:
            raise await self._expired(idle_deadline) from None
        finally:
            self._wait_deadline = None

    def _deadline_error(self, detail: str = "") -> GrpcStatusError:
        text = f"deadline exceeded after {self._timeout:g}s"
        return GrpcStatusError(
            GrpcStatus.DEADLINE_EXCEEDED,
            f"{text} ({detail})" if detail else text,
            self._endpoint,
            self._method,
        )

    # ------------------------------------------------------------------ starting

    async def _start(
        self, first_message: bytes | memoryview | None, end: bool, conn: Connection | None = None
    ) -> None:
        """Open the stream (connecting if needed, unless ``conn`` is given) and send the first message and
        END_STREAM if asked."""
        if conn is None:
            conn = await self._channel.connection()
        if not conn.has_stream_slot():
            await conn.wait_until(None, conn.has_stream_slot, self._wait_deadline)
            if conn.failure is not None:
                raise _copy_error(conn.failure)
        block = self._channel.request_block(self._method, self._metadata)
        if self._deadline is not None:
            block += encode_timeout_header(max(self._deadline - self._backend.current_time(), 0.0))
        state = conn.open_stream(block, end_stream=end and first_message is None)
        self._conn, self._state = conn, state
        if first_message is not None:
            await self._send_message(first_message, end)
        else:
            await conn.flush()
        if end:
            self._send_closed = True

    async def _send_message(self, message: bytes | memoryview, end: bool) -> None:
        """Send one length-prefixed message, respecting the peer's flow-control windows."""
        conn, state = self._conn, self._state
        assert conn is not None and state is not None
        view = memoryview(message).cast("B")
        compressed = self._channel.request_compression is not None
        if compressed:
            view = memoryview(compress_request(view))
        total = len(view) + PREFIX.size
        prefix = PREFIX.pack(1 if compressed else 0, len(view))
        if total <= conn.send_window(state):
            if len(view) < 65536:
                conn.queue_data(state, prefix + view.tobytes(), end)  # one frame; the copy is cheap
            else:
                conn.queue_data(state, prefix, False)
                conn.queue_data(state, view, end)
            await conn.flush()
            return
        pieces = [memoryview(prefix)] + ([view] if len(view) else [])
        queued = 0
        for index, piece in enumerate(pieces):
            last_piece = index == len(pieces) - 1
            pos = 0
            while pos < len(piece):
                if state.finished:
                    return  # the server ended the call; its status tells the caller why
                window = conn.send_window(state)
                if window <= 0:
                    await conn.flush()
                    queued = 0
                    await conn.wait_until(
                        state, lambda: conn.send_window(state) > 0 or state.finished, self._wait_deadline
                    )
                    if conn.failure is not None:
                        raise _copy_error(conn.failure)
                    continue
                chunk = piece[pos : pos + window]
                pos += len(chunk)
                conn.queue_data(state, chunk, end and last_piece and pos == len(piece))
                queued += len(chunk)
                if queued >= _FLUSH_EVERY:
                    await conn.flush()
                    queued = 0
        await conn.flush()

    # ------------------------------------------------------------------ receiving

    async def _receive(self, checkpoint: bool = True) -> bytes | memoryview | None:
        """Return the next reply message, or None once the server ended the call with status OK.

        Unless ``checkpoint`` is false, a pending cancellation is honoured even when a message is
        already queued (no scheduling cost).
        """
        if checkpoint:
            await self._backend.checkpoint_if_cancelled()
        while True:
            state, conn = self._state, self._conn
            assert state is not None and conn is not None
            if state.messages:
                if not self._headers_checked:
                    self._check_headers()
                return state.messages.popleft()
            if state.headers is not None and not self._headers_checked:
                self._check_headers()
            if state.error is not None or state.reset_code is not None:
                if await self._retry_if_refused():
                    continue
                self._raise_final()
            if state.ended:
                self._raise_final()
                self._done = True
                return None
            if state.unacked:
                conn.acknowledge(state)
                await conn.flush()
            await conn.wait_until(state, _has_news(state), self._wait_deadline)

    def _check_headers(self) -> None:
        """Fail early if the reply headers are not a gRPC reply."""
        state = self._state
        assert state is not None and state.headers is not None
        self._headers_checked = True
        if state.headers in _PLAIN_REPLY_HEADERS:
            return
        problem = check_response_headers(header_dict(state.headers))
        if problem is not None:
            raise GrpcStatusError(problem[0], problem[1], self._endpoint, self._method)

    async def _retry_if_refused(self) -> bool:
        """Send a refused unary/server-streaming request again, once, on a fresh connection."""
        state = self._state
        assert state is not None
        if not state.refused or self._replay is None or self._retried or state.headers is not None:
            return False
        self._retried = True
        await self._release(reset=True)
        self._done = False
        self._headers_checked = False
        if self._wait_deadline is None:
            await self._start(self._replay, end=True)
            return True
        # This start may connect, which only a scope bounds by the call's deadline.
        with self._backend.create_cancel_scope(deadline=self._wait_deadline) as scope:
            await self._start(self._replay, end=True)
        if scope.cancelled_caught:
            raise WaitExpired
        return True

    def _raise_final(self) -> None:
        """Raise the error that ended the call, if any (returns for a clean grpc-status 0)."""
        state = self._state
        assert state is not None
        if state.error is not None:
            raise _copy_error(state.error)
        if state.trailers == _OK_TRAILERS and self._headers_checked and state.ended:
            self._fail_if_partial()
            return  # the usual end: checked headers, then trailers saying only "OK"
        headers = header_dict(state.headers) if state.headers is not None else {}
        if state.headers is not None:
            problem = check_response_headers(headers)
            if problem is not None:
                raise GrpcStatusError(problem[0], problem[1], self._endpoint, self._method)
        if state.reset_code is not None and not state.ended:
            # A reset after END_STREAM (e.g. NO_ERROR: "stop sending") does not change the outcome.
            code = error_code(state.reset_code)
            reason = code.name if isinstance(code, ErrorCode) else str(code)
            raise TransportError(f"server reset the stream of {self._method} ({reason})", self._endpoint)
        status = response_status(header_dict(state.trailers)) if state.trailers else response_status(headers)
        if status is None:
            raise GrpcStatusError(
                GrpcStatus.INTERNAL,
                "server ended the call without a grpc-status",
                self._endpoint,
                self._method,
            )
        if status[0] == GrpcStatus.DEADLINE_EXCEEDED and self._timeout is not None:
            # The server's copy of our deadline (grpc-timeout) fired first; say so in the same words.
            raise self._deadline_error(f"server: {status[1]}" if status[1] else "reported by the server")
        if status[0] != 0:
            raise GrpcStatusError(status[0], status[1], self._endpoint, self._method)
        self._fail_if_partial()

    def _fail_if_partial(self) -> None:
        """Raise if the server ended the call with part of a message still buffered."""
        state = self._state
        assert state is not None
        if state.reader.partial:
            raise GrpcStatusError(
                GrpcStatus.INTERNAL,
                "server ended the call in the middle of a message",
                self._endpoint,
                self._method,
            )

    # ------------------------------------------------------------------ ending

    async def _release(self, *, reset: bool) -> None:
        """Hand the stream back to the connection (idempotent)."""
        if self._conn is not None and self._state is not None:
            await self._conn.release(self._state, reset=reset)

    async def aclose(self) -> None:
        """Finish the call: reset the stream unless the server already completed it."""
        if self._conn is None or self._state is None:
            return
        await self._release(reset=True)  # no RST goes out for a stream already closed both ways
        self._conn = None

    async def __aenter__(self) -> Any:
        return self

    def _check_open(self) -> None:
        """Raise StopAsyncIteration after a clean end, RuntimeError if the call is not (or no longer) open."""
        if self._done:
            raise StopAsyncIteration
        if self._conn is None or self._state is None:
            raise RuntimeError(f"{self._method}: iterate the call inside its 'async with' block")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class UnaryCall(Call):
    """A call with one request and one reply."""

    async def run(self, request: bytes | memoryview) -> bytes:
        """Send the request, return the reply payload.

        On a connection ready to take the call, no cancel scope is entered: every wait of the call (a stream
        slot, send window, the reply) is a :meth:`Connection.wait_until` given the deadline, and the sends on
        the way are bounded by the connection's write timeout as under a scope (they are shielded there).
        Without a ready connection the whole call runs under a scope: connecting is bounded only by one.
        """
        self._replay = request
        try:
            conn = self._channel.ready_connection()
            if conn is None:
                return await self._bounded(self._run, request)
            return await self._unscoped(self._run, request, conn)
        finally:
            await self.aclose()

    async def _run(self, request: bytes | memoryview, conn: Connection | None = None) -> bytes:
        await self._start(request, end=True, conn=conn)
        reply = await self._receive()
        if reply is None:
            raise GrpcStatusError(
                GrpcStatus.INTERNAL, "server sent no reply message", self._endpoint, self._method
            )
        extra = await self._receive(checkpoint=False)  # the first receive was the cancellation point
        if extra is not None:
            raise GrpcStatusError(
                GrpcStatus.INTERNAL, "server sent more than one reply message", self._endpoint, self._method
            )
        return reply if isinstance(reply, bytes) else bytes(reply)


class ServerStreamCall(Call):
    """A call with one request and a stream of replies; ``async with`` it, then iterate it.

    Each item is one reply message payload (``bytes`` or ``memoryview``). Iteration ends when the server
    finishes with status OK; a non-OK status raises :class:`~.errors.GrpcStatusError` after the messages
    that preceded it.
    """

    def __init__(
        self,
        channel: CallSite,
        method: str,
        timeout: float | None,
        metadata: list[tuple[bytes, bytes]],
        *,
        request: bytes | memoryview,
        idle_timeout: float | None = None,
    ) -> None:
        super().__init__(channel, method, timeout, metadata, replay=request, idle_timeout=idle_timeout)
        self._request = request
        self._no_scope = False

    async def __aenter__(self) -> ServerStreamCall:
        try:
            conn = self._channel.ready_connection()
            if conn is None:
                await self._bounded(self._start, self._request, True)
            else:  # as a unary call does: no scope on a ready connection (see Call._unscoped)
                self._no_scope = True
                await self._unscoped(self._start, self._request, True, conn)
        except BaseException:
            await self.aclose()
            raise
        return self

    def __aiter__(self) -> ServerStreamCall:
        return self

    async def __anext__(self) -> bytes | memoryview:
        self._check_open()
        if self._no_scope:
            message = await self._unscoped(self._receive)
        else:
            message = await self._bounded(self._receive)
        if message is None:
            raise StopAsyncIteration
        return message


class BidiCall(Call):
    """A call with streams both ways: ``send`` messages, ``end_send``, and iterate the replies.

    ``send`` and ``end_send`` may be called from several tasks; they are serialised, so messages never
    interleave on the wire and END_STREAM never overtakes a message still waiting for send window.
    """

    _send_lock: anyio.Lock | None = None

    def _sending(self) -> anyio.Lock:
        if self._send_lock is None:
            self._send_lock = anyio.Lock()
        return self._send_lock

    async def __aenter__(self) -> BidiCall:
        try:
            await self._bounded(self._start, None, False)
        except BaseException:
            await self.aclose()
            raise
        return self

    async def send(self, message: bytes | memoryview) -> None:
        """Send one request message."""
        if self._send_closed:
            raise RuntimeError(f"send() after end_send() on {self._method}")
        if self._state is None or self._conn is None:
            raise RuntimeError(f"send() on {self._method} outside its 'async with' block")
        async with self._sending():
            if self._send_closed:
                raise RuntimeError(f"send() after end_send() on {self._method}")
            await self._bounded(self._send_message, message, False)

    async def end_send(self) -> None:
        """Tell the server no more request messages follow (half-close)."""
        if self._send_closed or self._state is None or self._conn is None:
            return
        async with self._sending():
            if self._send_closed or self._state is None or self._conn is None:
                return
            self._send_closed = True
            if not self._state.finished:
                self._conn.queue_end_stream(self._state)
                await self._bounded(self._conn.flush)

    def __aiter__(self) -> BidiCall:
        return self

    async def __anext__(self) -> bytes | memoryview:
        self._check_open()
        message = await self._bounded(self._receive)
        if message is None:
            raise StopAsyncIteration
        return message
