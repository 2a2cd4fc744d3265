"""One HTTP/2 connection of the gRPC server: frames in, calls started, replies out.

:class:`GrpcProtocol` is an :class:`asyncio.Protocol`: ``data_received`` feeds the sans-IO
:class:`~pingthings.wire.http2.frames.FrameReader` and handles every complete frame at once,
without tasks; each admitted call runs its handler in one task. Outgoing bytes are gathered and
written once per turn of the event loop (:meth:`GrpcProtocol.write`), so a reply's frames, and
the replies of calls finishing together, leave in one ``transport.write``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pingthings.server.grpc import flow
from pingthings.server.grpc.call import JOIN_BELOW, Call
from pingthings.server.grpc.dispatch import Method, ServerSide
from pingthings.server.grpc.eager import start_eager
from pingthings.server.grpc.send_queue import unacknowledged_bytes
from pingthings.server.grpc.status import GrpcError, GrpcStatus
from pingthings.server.grpc.timeout import parse_timeout
from pingthings.server.service.compression import negotiate
from pingthings.server.service.gather_write import GatherWriter
from pingthings.wire.http2 import frames
from pingthings.wire.http2.frames import ConnectionProtocolError, ErrorCode, FrameReader
from pingthings.wire.http2.hpack import HeaderDecoder

log = logging.getLogger("pingthings.server")

_PREFACE = frames.PREFACE
_SERVER_SETTINGS = frames.settings_frame(
    {
        frames.MAX_CONCURRENT_STREAMS: flow.MAX_CONCURRENT_STREAMS,
        frames.INITIAL_WINDOW_SIZE: flow.STREAM_WINDOW,
        frames.MAX_FRAME_SIZE: flow.MAX_FRAME_SIZE,
        frames.MAX_HEADER_LIST_SIZE: flow.MAX_HEADER_LIST,
        frames.ENABLE_PUSH: 0,
    }
)


#: Seconds of silence from a half-closed connection's client after which it is closed, once it
#: has every byte (a client still reading keeps sending WINDOW_UPDATEs; an idle one sends nothing).
LINGER_SILENCE = 0.25
#: Longest a half-closed connection is kept, whatever its client does (one that keeps talking, or
#: never reads the rest, must not hold a socket: a protocol error closes this way too, with no
#: server stop to bound it).
LINGER_MAX = 3.0


class GrpcProtocol(asyncio.Protocol):
    """The server side of one HTTP/2 connection (see the module docstring)."""

    def __init__(self, server: ServerSide) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: Any = None
        self.reader = FrameReader(max_frame_size=flow.MAX_FRAME_SIZE, max_header_block=flow.MAX_HEADER_LIST)
        self.decoder = HeaderDecoder(max_header_list_size=flow.MAX_HEADER_LIST)
        self.calls: dict[int, Call] = {}
        self.last_stream_id = 0
        #: The peer's connection window for what we send, and its settings.
        self.send_window = frames.DEFAULT_WINDOW
        self.peer_initial_window = frames.DEFAULT_WINDOW
        self.peer_max_frame = frames.DEFAULT_MAX_FRAME
        self.credit = flow.ConnectionCredit()
        self.paused = False
        self.goaway_sent = False
        self.closed = False
        self._preface = b""
        self._out: list[bytes] = []
        self._flush_scheduled = False
        #: True while frames are handled or an eager call's task steps: ``write`` only queues,
        #: and whoever set it writes the queue out when done (no ``call_soon`` per call).
        self._batching = False
        #: Calls admitted while handling received frames, started once all of them are handled
        #: (a unary request's DATA and END_STREAM usually follow its HEADERS in the same read).
        self._to_start: list[tuple[Call, Method, float | None]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._gather: GatherWriter | None = None
        #: After a half-close: when the client last sent anything (see :meth:`close`).
        self._heard_at = 0.0
        self._linger_until = 0.0
        #: The GOAWAY frame queued, if any (told apart from replies still queued at close).
        self._goaway_frame: bytes | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.server.track(self)
        self._gather = GatherWriter(transport)
        self.write(_SERVER_SETTINGS + self.credit.opening_update())

    def data_received(self, data: bytes) -> None:
        if self.closed:
            self._heard_at = self.loop.time()  # half-closed: read and dropped (see close)
            return
        if self._preface is not None:
            data = self._read_preface(data)
            if not data:
                self._flush()
                return
        self.reader.feed(data)
        self._batching = True
        try:
            try:
                for frame in self.reader:
                    self._handle(frame)
            except ConnectionProtocolError as exc:
                self.fail(exc.code, exc.message)
            if self._to_start:
                self._start_calls()
        finally:
            self._batching = False
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.forget(self)
        calls, self.calls = self.calls, {}
        for call in calls.values():
            self._cancel(call)
        self._out.clear()
        self._wake_writers()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake_writers()

    # -- writing ---------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue ``data``; everything queued is written in one go before the loop waits for I/O."""
        if self.closed:
            return
        self._out.append(data)
        if not self._flush_scheduled and not self._batching:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def write_pieces(self, pieces: list[Any], sizes: list[int]) -> None:
        """Write buffers in order: small totals joined, large ones as views (``writev`` on plain TCP)."""
        if self.closed:
            return
        total = sum(sizes)
        if total < JOIN_BELOW:
            self.write(b"".join(pieces))
            return
        self._flush()
        gather = self._gather
        assert gather is not None
        for piece, size in zip(pieces, sizes, strict=True):
            gather.add(piece, size)
        gather.flush()

    def send_now(self) -> None:
        """Write what is queued now. A lone call's reply uses it to leave before the call's own
        bookkeeping (see :meth:`.call.Call.send_unary`)."""
        self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if out and not self.closed:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            self.transport.write(data)

    async def wait_writable(self) -> None:
        """Until a window grows, the transport resumes, or the connection ends."""
        if self.closed:
            raise asyncio.CancelledError("the connection is closed")
        waiter = self.loop.create_future()
        self._waiters.append(waiter)
        await waiter

    def _wake_writers(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- flow control ----------------------------------------------------------------------------

    def release(self, call: Call, length: int, stream_too: bool, urgent: bool = False) -> None:
        """Give ``length`` consumed request bytes back to the peer (see :mod:`.flow`)."""
        update = self.credit.release(length, urgent)
        if update:
            self.write(update)
        if stream_too and not call.request_ended and not call.reset:
            call.recv_window += length
            self.write(frames.window_update(call.stream_id, length))

    # -- frames ----------------------------------------------------------------------------------

    def _read_preface(self, data: bytes) -> bytes:
        have = self._preface + data
        if len(have) < len(_PREFACE):
            if not _PREFACE.startswith(have):
                self._bad_preface()
                return b""
            self._preface = have
            return b""
        if not have.startswith(_PREFACE):
            self._bad_preface()
            return b""
        self._preface = None  # type: ignore[assignment]
        return have[len(_PREFACE) :]

    def _bad_preface(self) -> None:
        self.fail(ErrorCode.PROTOCOL_ERROR, "the connection did not start with the HTTP/2 preface")

    def _handle(self, frame: frames.Frame) -> None:
        kind, flags, stream_id, payload = frame
        if kind == frames.DATA:
            self._on_data(flags, stream_id, payload)
        elif kind == frames.HEADERS:
            self._on_headers(flags, stream_id, bytes(payload))
        elif kind == frames.WINDOW_UPDATE:
            self._on_window_update(stream_id, payload)
        elif kind == frames.SETTINGS:
            if not flags & frames.ACK:
                self._on_settings(payload)
        elif kind == frames.PING:
            if not flags & frames.ACK:
                self.write(frames.ping(bytes(payload), ack=True))
        elif kind == frames.RST_STREAM:
            self._on_reset(stream_id)
        elif kind == frames.PUSH_PROMISE:
            raise ConnectionProtocolError(ErrorCode.PROTOCOL_ERROR, "a client may not send PUSH_PROMISE")
        # PRIORITY, GOAWAY (the client stops opening streams; ours finish) and unknown types: nothing.

    def _on_data(self, flags: int, stream_id: int, payload: Any) -> None:
        length = len(payload) + self.reader.last_padding
        self.credit.receive(length)
        call = self.calls.get(stream_id)
        if call is None or call.request_ended:
            if stream_id > self.last_stream_id:
                raise ConnectionProtocolError(ErrorCode.PROTOCOL_ERROR, f"DATA on idle stream {stream_id}")
            if call is not None:  # DATA after the client ended the stream
                self._reset_stream(call, ErrorCode.STREAM_CLOSED)
            self._release_now(length)
            return
        if length > call.recv_window:
            self._release_now(length)
            self._reset_stream(call, ErrorCode.FLOW_CONTROL_ERROR)
            return
        call.recv_window -= length
        if length > len(payload):  # padding is consumed as it arrives
            self.release(call, length - len(payload), stream_too=True)
        if payload:
            base = payload.obj if isinstance(payload, memoryview) else None
            if base is not None and payload.nbytes * 2 < memoryview(base).nbytes:
                payload = bytes(payload)  # do not pin a large received chunk for a small piece of it
            call.feed(payload)
        if flags & frames.END_STREAM:
            call.end_request()

    def _release_now(self, length: int) -> None:
        update = self.credit.release(length)
        if update:
            self.write(update)

    def _on_window_update(self, stream_id: int, payload: Any) -> None:
        increment = frames.parse_window_update(payload)
        if stream_id == 0:
            if increment == 0:
                raise ConnectionProtocolError(ErrorCode.PROTOCOL_ERROR, "a connection WINDOW_UPDATE of 0")
            self.send_window = flow.grown_window(self.send_window, increment, "the connection")
        else:
            call = self.calls.get(stream_id)
            if call is None:
                if stream_id > self.last_stream_id:
                    raise ConnectionProtocolError(
                        ErrorCode.PROTOCOL_ERROR, f"WINDOW_UPDATE on idle stream {stream_id}"
                    )
                return
            if increment == 0:
                self._reset_stream(call, ErrorCode.PROTOCOL_ERROR)
                return
            call.send_window += increment
            if call.send_window > frames.MAX_WINDOW:
                self._reset_stream(call, ErrorCode.FLOW_CONTROL_ERROR)
                return
        self._wake_writers()

    def _on_settings(self, payload: Any) -> None:
        for ident, value in frames.parse_settings(payload):
            if ident == frames.INITIAL_WINDOW_SIZE:
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                for call in self.calls.values():
                    call.send_window = flow.grown_window(call.send_window, delta, f"stream {call.stream_id}")
            elif ident == frames.MAX_FRAME_SIZE:
                self.peer_max_frame = value
            # HEADER_TABLE_SIZE: our encoder never uses the dynamic table. The rest do not apply.
        self.write(frames.settings_ack())
        self._wake_writers()

    def _on_reset(self, stream_id: int) -> None:
        if stream_id > self.last_stream_id:
            raise ConnectionProtocolError(ErrorCode.PROTOCOL_ERROR, f"RST_STREAM on idle stream {stream_id}")
        call = self.calls.pop(stream_id, None)
        if call is not None:
            self._cancel(call)

    def _on_headers(self, flags: int, stream_id: int, block: bytes) -> None:
        headers = self.decoder.decode(block)  # always: the decoder's table must follow the peer's
        call = self.calls.get(stream_id)
        if call is not None:  # the client's trailers end its side of the stream
            if not flags & frames.END_STREAM:
                raise ConnectionProtocolError(
                    ErrorCode.PROTOCOL_ERROR, f"a second HEADERS without END_STREAM on stream {stream_id}"
                )
            call.end_request()
            return
        if stream_id % 2 == 0:
            raise ConnectionProtocolError(
                ErrorCode.PROTOCOL_ERROR, f"a client opened even stream {stream_id}"
            )
        if stream_id <= self.last_stream_id:
            return  # trailers of a call that has ended already (for instance a refused one)
        self.last_stream_id = stream_id
        if self.goaway_sent:
            return  # not processed: the GOAWAY told the client so
        if len(self.calls) >= flow.MAX_CONCURRENT_STREAMS:
            self.write(frames.rst_stream(stream_id, ErrorCode.REFUSED_STREAM))
            return
        self._open_call(stream_id, flags, headers)

    def _open_call(self, stream_id: int, flags: int, headers: list[tuple[bytes, bytes]]) -> None:
        method = path = content_type = te = timeout = encoding = accepts = None
        for name, value in headers:
            if name[:1] == b":":
                if name == b":path":
                    path = value
                elif name == b":method":
                    method = value
                elif name not in (b":scheme", b":authority"):
                    self.write(frames.rst_stream(stream_id, ErrorCode.PROTOCOL_ERROR))
                    return
            elif name == b"content-type":
                content_type = value
            elif name == b"te":
                te = value
            elif name == b"grpc-timeout":
                timeout = value
            elif name == b"grpc-encoding":
                encoding = value
            elif name == b"grpc-accept-encoding":
                accepts = value
        if method is None or path is None:
            self.write(frames.rst_stream(stream_id, ErrorCode.PROTOCOL_ERROR))
            return
        server = self.server
        negotiated = negotiate(encoding, accepts, server.compress_replies)
        call = Call(
            self,
            stream_id,
            path.decode("latin-1"),
            headers,
            self.peer_initial_window,
            server.max_message_bytes,
            negotiated.request_encoding,
            negotiated.compress_replies,
        )
        call.recv_window = flow.STREAM_WINDOW
        self.calls[stream_id] = call
        if flags & frames.END_STREAM:
            call.end_request()
        refusal = _refusal(method, content_type, te)
        if refusal is not None:
            http_status, message = refusal
            call.end(GrpcStatus.UNKNOWN, message, http_status)
            return
        served = server.methods.get(call.path)
        if served is None:
            call.end(GrpcStatus.UNIMPLEMENTED, f"unknown method {call.path}")
            return
        deadline = None
        if timeout is not None:
            try:
                deadline = parse_timeout(timeout)
            except ValueError as exc:
                call.end(GrpcStatus.UNKNOWN, str(exc))
                return
        try:
            server.policy.admit(call)
        except GrpcError as exc:
            call.end(exc.status, exc.message)
            return
        if deadline is not None:
            deadline += self.loop.time()
        self._to_start.append((call, served, deadline))

    def _start_calls(self) -> None:
        """Start the calls admitted while handling the frames of one read (see ``_to_start``)."""
        starting, self._to_start = self._to_start, []
        alone = len(starting) == 1
        for call, method, deadline in starting:
            if not call.reset and not call.ended:
                self._start(call, method, deadline, alone)

    def _start(self, call: Call, method: Method, deadline: float | None, alone: bool = False) -> None:
        policy = self.server.policy
        policy.started(call)
        if method.eager:
            task = start_eager(
                self.loop, self._serve_eager(call, method.handler), self._hold_writes, self._after_step, alone
            )
            if task is None:
                return  # replied already, in this turn
        else:
            task = self.loop.create_task(self._serve(call, method.handler))
            task.add_done_callback(lambda _task: policy.finished(call))
        call.task = task
        if call.reset:  # reset while its first step ran
            task.cancel()
        elif deadline is not None and not call.ended:
            call.deadline_timer = self.loop.call_at(deadline, self._deadline_passed, call)

    def _hold_writes(self) -> None:
        """Before each step of an eager call's task: writes are queued (see :meth:`_after_step`)."""
        self._batching = True

    def _after_step(self) -> None:
        """After each step of an eager call's task: write what it queued, unless calls remain
        that may still write in this turn (then one write later covers them all)."""
        self._batching = False
        if self._flush_scheduled or not self._out:
            return
        if not self.calls:
            self._flush()
        else:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    async def _serve_eager(self, call: Call, handler: Any) -> None:
        """:meth:`_serve` for an eager call, which has no done callback: the call ends here."""
        try:
            await self._serve(call, handler)
        finally:
            self.server.policy.finished(call)

    async def _serve(self, call: Call, handler: Any) -> None:
        """Run the handler and end the call: every outcome of a handler is mapped here."""
        try:
            await self.server.policy.run(call, handler)
        except asyncio.CancelledError:
            if call.timed_out:
                call.end(GrpcStatus.DEADLINE_EXCEEDED, "deadline exceeded")
            return
        except GrpcError as exc:
            call.end(exc.status, exc.message)
            return
        except Exception:
            log.exception("call to %s failed", call.path)
            call.end(GrpcStatus.UNKNOWN, "internal server error")
            return
        call.end()

    def _deadline_passed(self, call: Call) -> None:
        call.deadline_timer = None
        if call.task is not None and not call.task.done() and not call.ended:
            call.timed_out = True
            call.task.cancel()

    # -- ending streams and the connection ---------------------------------------------------------

    def call_done(self, call: Call) -> None:
        """The call has sent its trailers: forget it, and reset the stream if the client is still sending."""
        if self.calls.get(call.stream_id) is call:
            del self.calls[call.stream_id]
        if call.deadline_timer is not None:
            call.deadline_timer.cancel()
            call.deadline_timer = None
        if not call.request_ended:
            self.write(frames.rst_stream(call.stream_id, ErrorCode.NO_ERROR))
            call.request_ended = True
        call.drop_buffer()

    def _reset_stream(self, call: Call, code: ErrorCode) -> None:
        self.write(frames.rst_stream(call.stream_id, code))
        self.calls.pop(call.stream_id, None)
        self._cancel(call)

    def _cancel(self, call: Call) -> None:
        call.abort()
        if call.deadline_timer is not None:
            call.deadline_timer.cancel()
            call.deadline_timer = None
        if call.task is not None and not call.task.done():
            call.task.cancel()

    def goaway(self, code: ErrorCode = ErrorCode.NO_ERROR, debug: bytes = b"") -> None:
        """Tell the client that no stream above the last one it opened will be processed."""
        if not self.goaway_sent and not self.closed:
            self.goaway_sent = True
            self._goaway_frame = frames.goaway(self.last_stream_id, code, debug)
            self.write(self._goaway_frame)

    def fail(self, code: ErrorCode, message: str) -> None:
        """End the connection for a protocol error: GOAWAY with ``code``, cancel calls, close."""
        log.info("closing an HTTP/2 connection: %s (%s)", message, code.name)
        self.goaway(code, message.encode("utf-8", "replace")[:256])
        self.close()

    def close(self) -> None:
        """Cancel every call, write what is queued and end the connection.

        A connection with nothing under way (no call, every byte written acknowledged by the
        client's kernel) is closed outright. Any other is half-closed: a FIN follows the queued
        bytes (on plain TCP; TLS transports cannot send one), and what the client still sends is
        read and dropped (``data_received`` ignores it) until it closes its side, or until it has
        sent nothing for :data:`LINGER_SILENCE` seconds and has every byte (see :meth:`_linger`),
        or for :data:`LINGER_MAX` seconds at most, or until
        :meth:`.shutdown.GrpcServer.wait_closed` gives up on it. Closing the socket outright
        while the client's WINDOW_UPDATEs or PINGs sit unread in it, or arrive later, makes the
        kernel answer with a reset that throws away the reply bytes not yet received: a graceful
        stop then cut off calls it had let finish. Where the kernel does not tell what it still
        holds (off Linux), every connection is half-closed.
        """
        if self.closed:
            return
        calls, self.calls = self.calls, {}
        for call in calls.values():
            self._cancel(call)
        at_rest = (
            not calls
            and all(chunk is self._goaway_frame for chunk in self._out)
            and unacknowledged_bytes(self.transport) == 0
        )
        self._flush()
        self.closed = True
        self._wake_writers()
        if at_rest:
            self.transport.close()
            return
        if self.transport.can_write_eof():  # TLS cannot: there the client sees only the GOAWAY
            self.transport.write_eof()
        self._heard_at = self.loop.time()
        self._linger_until = self._heard_at + LINGER_MAX
        self.loop.call_later(LINGER_SILENCE, self._linger)

    def _linger(self) -> None:
        """Close a half-closed connection once its client has been silent for LINGER_SILENCE and
        has acknowledged every byte (where the kernel tells); drop it after LINGER_MAX whatever
        the client does (``close`` would wait for a client that never reads)."""
        if self.transport.is_closing():
            return
        now = self.loop.time()
        quiet = now - self._heard_at
        if now >= self._linger_until:
            self.transport.abort()
        elif quiet < LINGER_SILENCE:
            self.loop.call_later(min(LINGER_SILENCE - quiet, self._linger_until - now), self._linger)
        elif unacknowledged_bytes(self.transport):
            self.loop.call_later(LINGER_SILENCE / 5, self._linger)
        else:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once (a client that does not read)."""
        self.close()
        self.transport.abort()


def _refusal(method: bytes, content_type: bytes | None, te: bytes | None) -> tuple[int, str] | None:
    """The HTTP status and message for a request that is not a gRPC call, or None."""
    if method != b"POST":
        return 405, f"gRPC calls use POST, not {method.decode('latin-1')}"
    if content_type is None:
        return 415, "missing content-type header"
    if not content_type.startswith(b"application/grpc"):
        return 415, f"content-type {content_type.decode('latin-1')!r} is not application/grpc"
    if te != b"trailers":
        return 400, 'the required "te: trailers" header is missing'
    return None
