"""The client side of one HTTP/2 connection, without I/O: what to send, and what received bytes mean.

Built on the shared sans-IO core (:mod:`pingthings.wire.http2`): its frame reader cuts received bytes
into frames and joins header blocks, its HPACK decoder reads reply headers, its builders make the frames
we send. This module keeps only what a gRPC client needs: stream ids, the server's settings, both
directions of flow control, and the effect of each received frame on the :class:`~.stream_state.StreamState`
of its stream. Request header blocks arrive already encoded (the channel keeps one per method), so opening
a stream costs a frame header and a list append.

Outgoing bytes accumulate in a list taken by :meth:`ClientProtocol.data_to_send`, so everything a call
queues (HEADERS, its DATA, END_STREAM) leaves in one socket write.

Streams continue after a GOAWAY: the server finishes the streams it promised to (those up to its last
stream id) and we keep receiving them; only new streams are refused.
"""

from __future__ import annotations

from pingthings.wire.http2 import frames as fr
from pingthings.wire.http2.hpack import HeaderDecoder

from .errors import TransportError
from .framing import FramingError
from .stream_state import StreamState

MAX_HEADER_LIST_SIZE = 256 << 10
"""Largest decoded header list (and header block) accepted from the server, whatever it claims."""

MAX_WINDOW = fr.MAX_WINDOW

_TABLE_SIZE_ZERO = b"\x20"
"""An HPACK dynamic table size update to 0 (RFC 7541 6.3)."""

_UNLIMITED = 2**31


class ClientProtocol:
    """The HTTP/2 state of one client connection.

    Parameters
    ----------
    max_frame_size
        Largest frame the server may send us (announced as SETTINGS_MAX_FRAME_SIZE and accepted at once).
    stream_window, connection_window
        Our inbound flow-control windows per stream and for the connection.
    max_message_size
        Largest reply message accepted on a stream.
    endpoint
        ``host:port``, named in the errors of streams the server broke.
    """

    def __init__(
        self,
        *,
        max_frame_size: int,
        stream_window: int,
        connection_window: int,
        max_message_size: int,
        endpoint: str,
    ) -> None:
        self._endpoint = endpoint
        self._reader = fr.FrameReader()
        # Announced before anything else, so frames this large may arrive at once.
        self._reader.max_frame_size = max_frame_size
        self._reader.max_header_block = MAX_HEADER_LIST_SIZE
        self._decoder = HeaderDecoder(max_table_size=4096, max_header_list_size=MAX_HEADER_LIST_SIZE)
        self._stream_window = stream_window
        self._connection_window = connection_window
        self._max_message_size = max_message_size
        #: Streams this connection still tracks, by id (the channel's calls own them).
        self.streams: dict[int, StreamState] = {}
        #: Id of the next stream we open.
        self.next_stream_id = 1
        #: Streams counted against the server's SETTINGS_MAX_CONCURRENT_STREAMS.
        self.open_streams = 0
        #: The server's settings we use.
        self.max_concurrent_streams = _UNLIMITED
        self.max_outbound_frame = fr.DEFAULT_MAX_FRAME
        self._initial_send_window = fr.DEFAULT_WINDOW
        #: Whether the server's first SETTINGS frame has arrived.
        self.settings_known = False
        #: Bytes of DATA we may send on the whole connection.
        self.send_window = fr.DEFAULT_WINDOW
        self._recv_window = connection_window
        self._conn_credit = 0  # consumed bytes not yet given back to the connection window
        #: ``(last_stream_id, error_code, debug)`` of the server's GOAWAY, once one arrived.
        self.goaway: tuple[int, int, bytes] | None = None
        self._table_update = False  # a dynamic table size update is owed to the server's decoder
        #: Set when HEADERS or DATA arrive (the caller clears it): the server is doing work.
        self.saw_content = False
        self._out: list[bytes | memoryview] = [
            fr.PREFACE,
            fr.settings_frame(
                {
                    fr.ENABLE_PUSH: 0,
                    fr.MAX_FRAME_SIZE: max_frame_size,
                    fr.INITIAL_WINDOW_SIZE: stream_window,
                    fr.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
                }
            ),
        ]
        if connection_window > fr.DEFAULT_WINDOW:
            self._out.append(fr.window_update(0, connection_window - fr.DEFAULT_WINDOW))

    # ------------------------------------------------------------------ sending

    def data_to_send(self) -> bytes:
        """Everything queued since the last call, as one buffer."""
        out = self._out
        if not out:
            return b""
        self._out = []
        return bytes(out[0]) if len(out) == 1 else b"".join(out)

    def has_stream_slot(self, before_settings: int) -> bool:
        """True if one more stream fits the server's limit (at most ``before_settings`` until it is known)."""
        limit = self.max_concurrent_streams
        if not self.settings_known and limit > before_settings:
            limit = before_settings
        return self.open_streams < limit

    def open_stream(self, header_block: bytes, end_stream: bool) -> StreamState:
        """Start a stream with an encoded request header block (queued)."""
        stream_id = self.next_stream_id
        self.next_stream_id = stream_id + 2
        if self._table_update:
            # The server changed SETTINGS_HEADER_TABLE_SIZE: the next block starts with a dynamic table
            # size update (RFC 7541 4.2). Ours is 0, always allowed: our encoder never uses the table.
            self._table_update = False
            header_block = _TABLE_SIZE_ZERO + header_block
        state = StreamState(stream_id, self._max_message_size, self._initial_send_window, self._stream_window)
        self._out.extend(fr.headers_frames(stream_id, header_block, end_stream, self.max_outbound_frame))
        self.streams[stream_id] = state
        self.open_streams += 1
        if end_stream:
            state.local_closed = True
        return state

    def window_for(self, state: StreamState) -> int:
        """Bytes of DATA that may go out on ``state`` now (in one frame)."""
        if state.local_closed or state.closed:
            return 0
        return min(state.send_window, self.send_window, self.max_outbound_frame)

    def send_data(self, state: StreamState, data: bytes | memoryview, end_stream: bool) -> None:
        """Queue DATA (the caller checked :meth:`window_for`; larger pieces are cut into frames)."""
        if state.local_closed or state.closed:
            raise FramingError(f"stream {state.stream_id} is closed for sending")
        size = len(data)
        state.send_window -= size
        self.send_window -= size
        out = self._out
        stream_id = state.stream_id
        step = self.max_outbound_frame
        if size <= step:
            out.append(fr.data_header(stream_id, size, end_stream))
            if size:
                out.append(data)
        else:
            view = memoryview(data)
            for start in range(0, size, step):
                piece = view[start : start + step]
                out.append(fr.data_header(stream_id, len(piece), end_stream and start + step >= size))
                out.append(piece)
        if end_stream:
            state.local_closed = True
            self._check_closed(state)

    def end_stream(self, state: StreamState) -> None:
        """Queue an empty DATA frame with END_STREAM."""
        if not state.local_closed and not state.closed:
            self.send_data(state, b"", True)

    def reset_stream(self, state: StreamState, code: int) -> None:
        """Queue RST_STREAM unless the stream is already closed; it no longer counts as open."""
        if state.closed:
            return
        self._out.append(fr.rst_stream(state.stream_id, code))
        state.local_closed = True
        if state.reset_code is None:
            state.reset_code = code
        self._close(state)

    def forget(self, state: StreamState) -> None:
        """Stop tracking a stream (its call is done); give back the credit of its unread bytes."""
        if self.streams.pop(state.stream_id, None) is not None:
            self.acknowledge(state)
            if not state.closed:
                self._close(state)

    def acknowledge(self, state: StreamState) -> None:
        """Give back the flow-control credit of the bytes the caller has consumed (updates are batched)."""
        amount = state.unacked
        if not amount:
            return
        state.unacked = 0
        self._credit_connection(amount)
        if state.ended or state.closed:
            return
        owed = state.credit + amount
        if owed >= self._stream_window // 2:
            state.credit = 0
            state.recv_window += owed
            self._out.append(fr.window_update(state.stream_id, owed))
        else:
            state.credit = owed

    def _credit_connection(self, amount: int) -> None:
        self._conn_credit += amount
        if self._conn_credit >= self._connection_window // 2:
            self._recv_window += self._conn_credit
            self._out.append(fr.window_update(0, self._conn_credit))
            self._conn_credit = 0

    def ping(self, payload: bytes) -> None:
        """Queue a PING."""
        self._out.append(fr.ping(payload, False))

    def close_connection(self) -> None:
        """Queue GOAWAY (no error; we never accept server-initiated streams)."""
        self._out.append(fr.goaway(0, fr.ErrorCode.NO_ERROR))

    def _check_closed(self, state: StreamState) -> None:
        if state.local_closed and state.ended and not state.closed:
            self._close(state)

    def _close(self, state: StreamState) -> None:
        state.closed = True
        self.open_streams -= 1

    # ------------------------------------------------------------------ receiving

    def receive(self, data: bytes | memoryview) -> set[int] | None:
        """Process received bytes; return the ids of the streams that changed (None: all of them).

        A stream that ended frees a slot; the tasks waiting for one wait on the connection, not on a
        stream, and are woken after every read anyway, so only the stream's own waiter is named. With
        many calls in flight, waking them all at every stream end cost O(calls) task switches per end.

        Raises
        ------
        ConnectionProtocolError
            The server broke the protocol; the connection is unusable (a GOAWAY saying why is queued).
        """
        reader = self._reader
        reader.feed(data)
        touched: set[int] = set()
        wake_all = False
        streams = self.streams
        try:
            for kind, flags, stream_id, payload in reader:
                if kind == fr.DATA:
                    self._on_data(flags, stream_id, payload, touched)
                elif kind == fr.HEADERS:
                    # Decoded even for a forgotten stream: the decoder's table must follow the server's.
                    headers = self._decoder.decode(payload)
                    state = streams.get(stream_id)
                    if state is None:
                        self._check_known(stream_id)
                        continue
                    self.saw_content = True
                    self._on_headers(state, headers, flags & fr.END_STREAM != 0)
                    touched.add(stream_id)
                elif kind == fr.RST_STREAM:
                    if self._on_reset(stream_id, payload):
                        touched.add(stream_id)
                elif kind == fr.SETTINGS:
                    if not flags & fr.ACK:
                        self._on_settings(payload)
                        wake_all = True
                elif kind == fr.WINDOW_UPDATE:
                    self._on_window_update(stream_id, payload)
                    if stream_id:
                        touched.add(stream_id)
                    else:
                        wake_all = True  # every stream may send more
                elif kind == fr.PING:
                    if not flags & fr.ACK:
                        self._out.append(fr.ping(bytes(payload), True))
                elif kind == fr.GOAWAY:
                    self._on_goaway(payload)
                    wake_all = True
                elif kind == fr.PUSH_PROMISE:
                    raise fr.ConnectionProtocolError(
                        fr.ErrorCode.PROTOCOL_ERROR, "server pushed a stream although push is disabled"
                    )
                # PRIORITY and unknown frame types are ignored, as HTTP/2 requires.
        except fr.ConnectionProtocolError as exc:
            self._out = [fr.goaway(0, exc.code)]
            raise
        return None if wake_all else touched

    def _check_known(self, stream_id: int) -> None:
        """A frame for a stream we do not track: fine if we opened it once, an error otherwise."""
        if stream_id == 0 or stream_id % 2 == 0 or stream_id >= self.next_stream_id:
            raise fr.ConnectionProtocolError(
                fr.ErrorCode.PROTOCOL_ERROR,
                f"server sent a frame for stream {stream_id}, which we never opened",
            )

    def _on_data(self, flags: int, stream_id: int, body: bytes | memoryview, touched: set[int]) -> None:
        size = len(body) + self._reader.last_padding  # flow control counts the padding too
        if size > self._recv_window:
            raise fr.ConnectionProtocolError(
                fr.ErrorCode.FLOW_CONTROL_ERROR, "server sent more DATA than the connection window allows"
            )
        self._recv_window -= size
        state = self.streams.get(stream_id)
        if state is None or (state.closed and state.reset_code is not None):
            self._check_known(stream_id)
            if size:
                self._credit_connection(size)
            return
        self.saw_content = True
        touched.add(stream_id)
        if size > state.recv_window:
            self._stream_error(state, fr.ErrorCode.FLOW_CONTROL_ERROR, "DATA beyond the stream window")
            self._credit_connection(size)
            return
        if state.headers is None or state.ended:
            what = "DATA before the reply headers" if state.headers is None else "DATA after END_STREAM"
            self._stream_error(state, fr.ErrorCode.PROTOCOL_ERROR, what)
            self._credit_connection(size)
            return
        state.recv_window -= size
        state.unacked += size
        if body:
            try:
                state.messages.extend(state.reader.feed(body))
            except ValueError as exc:
                if state.error is None:
                    state.error = TransportError(f"invalid gRPC framing: {exc}", self._endpoint)
                self.reset_stream(state, fr.ErrorCode.PROTOCOL_ERROR)
                return
        if flags & fr.END_STREAM:
            state.ended = True
            self._check_closed(state)

    def _on_headers(self, state: StreamState, headers: list[tuple[bytes, bytes]], end: bool) -> None:
        if state.ended:
            self._stream_error(state, fr.ErrorCode.STREAM_CLOSED, "HEADERS after the end of the stream")
            return
        if state.headers is None:
            status = _status(headers)
            if status is not None and status.startswith(b"1") and len(status) == 3:
                if end:
                    self._stream_error(
                        state, fr.ErrorCode.PROTOCOL_ERROR, "an informational reply ended the stream"
                    )
                return  # informational (1xx): the real reply headers follow
            state.headers = headers
            state.reader.set_encoding(_value(headers, b"grpc-encoding"))
        elif not end:
            self._stream_error(state, fr.ErrorCode.PROTOCOL_ERROR, "a second header block without END_STREAM")
            return
        else:
            state.trailers = headers
        if end:
            state.ended = True
            self._check_closed(state)

    def _stream_error(self, state: StreamState, code: int, what: str) -> None:
        """The server broke the protocol on one stream: fail that call and reset the stream."""
        if state.error is None:
            state.error = TransportError(f"HTTP/2 protocol error on a stream: {what}", self._endpoint)
        self.reset_stream(state, code)

    def _on_reset(self, stream_id: int, payload: bytes | memoryview) -> bool:
        state = self.streams.get(stream_id)
        if state is None:
            self._check_known(stream_id)
            return False
        if state.closed:
            return False
        code = fr.parse_rst_stream(payload)
        state.reset_code = code
        state.refused = code == fr.ErrorCode.REFUSED_STREAM and state.headers is None
        state.local_closed = True
        self._close(state)
        return True

    def _on_settings(self, payload: bytes | memoryview) -> None:
        for ident, value in fr.parse_settings(payload):
            if ident == fr.MAX_CONCURRENT_STREAMS:
                self.max_concurrent_streams = value
            elif ident == fr.INITIAL_WINDOW_SIZE:
                delta = value - self._initial_send_window
                self._initial_send_window = value
                for state in self.streams.values():
                    state.send_window += delta
                    if state.send_window > MAX_WINDOW:
                        raise fr.ConnectionProtocolError(
                            fr.ErrorCode.FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE overflows a window"
                        )
            elif ident == fr.MAX_FRAME_SIZE:
                self.max_outbound_frame = value
            elif ident == fr.HEADER_TABLE_SIZE:
                self._table_update = True
        self.settings_known = True
        self._out.append(fr.settings_ack())

    def _on_window_update(self, stream_id: int, payload: bytes | memoryview) -> None:
        increment = fr.parse_window_update(payload)
        if stream_id == 0:
            if increment == 0:
                raise fr.ConnectionProtocolError(fr.ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self.send_window += increment
            if self.send_window > MAX_WINDOW:
                raise fr.ConnectionProtocolError(fr.ErrorCode.FLOW_CONTROL_ERROR, "window overflow")
            return
        state = self.streams.get(stream_id)
        if state is None:
            self._check_known(stream_id)
            return
        if state.closed:
            return
        if increment == 0:
            self._stream_error(state, fr.ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            return
        state.send_window += increment
        if state.send_window > MAX_WINDOW:
            self._stream_error(state, fr.ErrorCode.FLOW_CONTROL_ERROR, "stream window overflow")

    def _on_goaway(self, payload: bytes | memoryview) -> None:
        last, code, debug = fr.parse_goaway(payload)
        if self.goaway is not None:
            last = min(last, self.goaway[0])
        self.goaway = (last, code, debug[:1024])


def _value(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _status(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    return headers[0][1] if headers and headers[0][0] == b":status" else _value(headers, b":status")
