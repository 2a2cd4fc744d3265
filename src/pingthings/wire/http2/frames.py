"""HTTP/2 frames (RFC 9113 section 4 and 6): constants, builders and an incremental reader.

The reader is sans-IO: feed it the bytes a socket produced and take complete frames out. It checks
everything that can be checked without connection state (frame sizes, which frames may use stream 0,
header blocks split over CONTINUATION frames) and raises :class:`ConnectionProtocolError` with the
error code to put in the GOAWAY frame. Stream states, flow control and SETTINGS semantics are the
caller's business.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import NamedTuple

# Frame types (RFC 9113 section 6).
DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9

# Flags. ACK shares its bit with END_STREAM: it applies to SETTINGS and PING only.
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# SETTINGS identifiers (RFC 9113 section 6.5.2).
HEADER_TABLE_SIZE = 0x1
ENABLE_PUSH = 0x2
MAX_CONCURRENT_STREAMS = 0x3
INITIAL_WINDOW_SIZE = 0x4
MAX_FRAME_SIZE = 0x5
MAX_HEADER_LIST_SIZE = 0x6

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DEFAULT_WINDOW = 65535
DEFAULT_MAX_FRAME = 16384
MAX_WINDOW = 2**31 - 1
LARGEST_MAX_FRAME = 2**24 - 1
HEADER_SIZE = 9

#: The default bound on a HEADERS block joined with its CONTINUATION frames.
DEFAULT_MAX_HEADER_BLOCK = 64 * 1024


class ErrorCode(IntEnum):
    """The error codes of RST_STREAM and GOAWAY frames (RFC 9113 section 7)."""

    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


def error_code(value: int) -> ErrorCode | int:
    """The :class:`ErrorCode` for ``value``, or the plain int for a code this module does not know."""
    try:
        return ErrorCode(value)
    except ValueError:
        return value


class ConnectionProtocolError(Exception):
    """The peer broke the protocol in a way that ends the connection (answer with GOAWAY ``code``)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class StreamProtocolError(Exception):
    """The peer broke the protocol on one stream only (answer with RST_STREAM ``code`` on it)."""

    def __init__(self, stream_id: int, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.stream_id = stream_id
        self.code = code
        self.message = message


class Frame(NamedTuple):
    """One complete frame as read from the peer.

    ``payload`` has padding and priority fields removed. A DATA payload may be a memoryview into the
    fed bytes (those must not change after :meth:`FrameReader.feed`); every other payload is bytes. A
    HEADERS or PUSH_PROMISE frame carries the whole header block, its CONTINUATION frames already
    joined, and has END_HEADERS set.
    """

    type: int
    flags: int
    stream_id: int
    payload: bytes | memoryview


#: ``_frame(Frame, fields)`` makes a Frame without the named tuple's Python ``__new__`` (0.2 µs, not 0.8).
_frame = tuple.__new__
_HEADER = struct.Struct(">HBBBL")  # 24-bit length as 16+8 bits, type, flags, stream id
_U32 = struct.Struct(">L")
_SETTING = struct.Struct(">HL")
_GOAWAY = struct.Struct(">LL")


def frame_header(length: int, type: int, flags: int, stream_id: int) -> bytes:
    """The 9-byte header of a frame with a payload of ``length`` bytes."""
    return _HEADER.pack(length >> 8, length & 0xFF, type, flags, stream_id)


def data_header(stream_id: int, length: int, end_stream: bool) -> bytes:
    """The header of a DATA frame, alone, so that its payload can be written without a copy."""
    return _HEADER.pack(length >> 8, length & 0xFF, DATA, END_STREAM if end_stream else 0, stream_id)


def settings_frame(pairs: dict[int, int]) -> bytes:
    """A SETTINGS frame announcing ``pairs`` (identifier to value)."""
    payload = b"".join(_SETTING.pack(ident, value) for ident, value in pairs.items())
    return frame_header(len(payload), SETTINGS, 0, 0) + payload


def settings_ack() -> bytes:
    """The empty SETTINGS frame that acknowledges the peer's settings."""
    return _SETTINGS_ACK


_SETTINGS_ACK = frame_header(0, SETTINGS, ACK, 0)


def window_update(stream_id: int, increment: int) -> bytes:
    """A WINDOW_UPDATE frame granting ``increment`` more bytes on ``stream_id`` (0: the connection)."""
    if not 0 < increment <= MAX_WINDOW:
        raise ValueError(f"a window increment must be in 1..{MAX_WINDOW}, not {increment}")
    return frame_header(4, WINDOW_UPDATE, 0, stream_id) + _U32.pack(increment)


def ping(payload: bytes, ack: bool) -> bytes:
    """A PING frame (or its acknowledgement) carrying the 8 bytes ``payload``."""
    if len(payload) != 8:
        raise ValueError(f"a PING payload is 8 bytes, not {len(payload)}")
    return frame_header(8, PING, ACK if ack else 0, 0) + bytes(payload)


def rst_stream(stream_id: int, code: int) -> bytes:
    """An RST_STREAM frame ending ``stream_id`` with error ``code``."""
    return frame_header(4, RST_STREAM, 0, stream_id) + _U32.pack(code)


def goaway(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    """A GOAWAY frame: streams above ``last_stream_id`` were not processed."""
    payload = _GOAWAY.pack(last_stream_id, code) + debug
    return frame_header(len(payload), GOAWAY, 0, 0) + payload


def headers_frames(stream_id: int, block: bytes, end_stream: bool, max_frame: int) -> list[bytes]:
    """A HEADERS frame carrying ``block``, followed by CONTINUATION frames if it exceeds ``max_frame``."""
    flags = END_STREAM if end_stream else 0
    if len(block) <= max_frame:
        return [frame_header(len(block), HEADERS, flags | END_HEADERS, stream_id) + block]
    frames = []
    kind = HEADERS
    for start in range(0, len(block), max_frame):
        piece = block[start : start + max_frame]
        last = start + max_frame >= len(block)
        frames.append(frame_header(len(piece), kind, flags | (END_HEADERS if last else 0), stream_id) + piece)
        kind, flags = CONTINUATION, 0
    return frames


def parse_settings(payload: bytes | memoryview) -> list[tuple[int, int]]:
    """The (identifier, value) pairs of a SETTINGS payload, with every known value checked.

    Raises
    ------
    ConnectionProtocolError
        FRAME_SIZE_ERROR if the payload is not a whole number of settings, FLOW_CONTROL_ERROR for an
        INITIAL_WINDOW_SIZE above 2**31-1, PROTOCOL_ERROR for a bad ENABLE_PUSH or MAX_FRAME_SIZE.
    """
    if len(payload) % 6:
        raise ConnectionProtocolError(
            ErrorCode.FRAME_SIZE_ERROR, f"a SETTINGS payload is a multiple of 6 bytes, not {len(payload)}"
        )
    pairs = [_SETTING.unpack_from(payload, offset) for offset in range(0, len(payload), 6)]
    for ident, value in pairs:
        if ident == INITIAL_WINDOW_SIZE and value > MAX_WINDOW:
            raise ConnectionProtocolError(
                ErrorCode.FLOW_CONTROL_ERROR, f"SETTINGS_INITIAL_WINDOW_SIZE {value} exceeds {MAX_WINDOW}"
            )
        if ident == MAX_FRAME_SIZE and not DEFAULT_MAX_FRAME <= value <= LARGEST_MAX_FRAME:
            raise ConnectionProtocolError(
                ErrorCode.PROTOCOL_ERROR,
                f"SETTINGS_MAX_FRAME_SIZE {value} is outside {DEFAULT_MAX_FRAME}..{LARGEST_MAX_FRAME}",
            )
        if ident == ENABLE_PUSH and value not in (0, 1):
            raise ConnectionProtocolError(
                ErrorCode.PROTOCOL_ERROR, f"SETTINGS_ENABLE_PUSH must be 0 or 1, not {value}"
            )
    return pairs


def parse_window_update(payload: bytes | memoryview) -> int:
    """The increment of a WINDOW_UPDATE payload (may be 0: the caller decides which error that is)."""
    return int(_U32.unpack_from(payload)[0]) & MAX_WINDOW


def parse_rst_stream(payload: bytes | memoryview) -> int:
    """The error code of an RST_STREAM payload."""
    return int(_U32.unpack_from(payload)[0])


def parse_goaway(payload: bytes | memoryview) -> tuple[int, int, bytes]:
    """The last stream id, error code and debug data of a GOAWAY payload."""
    last, code = _GOAWAY.unpack_from(payload)
    return last & MAX_WINDOW, code, bytes(payload[8:])


#: Frames that must name a stream, and frames that must not.
_NEEDS_STREAM = frozenset({DATA, HEADERS, PRIORITY, RST_STREAM, PUSH_PROMISE, CONTINUATION})
_CONNECTION_ONLY = frozenset({SETTINGS, PING, GOAWAY})
#: Frames whose payload has one fixed length.
_FIXED_LENGTH = {RST_STREAM: 4, PING: 8, WINDOW_UPDATE: 4, PRIORITY: 5}
_EMPTY = memoryview(b"")


class FrameReader:
    """Splits a byte stream into frames.

    Parameters
    ----------
    max_frame_size
        The largest payload accepted (our SETTINGS_MAX_FRAME_SIZE); settable later.
    max_header_block
        The largest header block accepted once CONTINUATION frames are joined; settable later.

    Notes
    -----
    Holds at most one frame's bytes plus the unread part of the last chunk. A frame that lies whole
    in one fed chunk is returned as a view of it; a frame split across chunks is copied once into a
    buffer of its own size.
    """

    def __init__(
        self, max_frame_size: int = DEFAULT_MAX_FRAME, max_header_block: int = DEFAULT_MAX_HEADER_BLOCK
    ):
        self.max_frame_size = max_frame_size
        self.max_header_block = max_header_block
        #: Bytes of padding (and its length byte) removed from the last DATA frame returned; flow
        #: control counts them, so a receiver credits ``len(payload) + last_padding``.
        self.last_padding = 0
        self._view: memoryview = _EMPTY
        self._pos = 0
        self._head = bytearray()  # part of a frame header split across chunks
        self._current: tuple[int, int, int, int] | None = (
            None  # length, type, flags, stream of a pending body
        )
        self._body: bytearray | None = None
        self._filled = 0
        self._block: bytearray | None = None  # an unfinished header block
        self._block_frame: tuple[int, int, int] = (0, 0, 0)  # type, flags, stream of that block

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes received from the peer; they must not be modified afterwards."""
        if self._pos < len(self._view):
            self._view = memoryview(bytes(self._view[self._pos :]) + bytes(data))
        else:
            self._view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        self._pos = 0

    @property
    def buffered(self) -> int:
        """Bytes held but not yet returned as frames."""
        pending = len(self._view) - self._pos + len(self._head) + self._filled
        return pending + (len(self._block) if self._block is not None else 0)

    def __iter__(self) -> FrameReader:
        return self

    def __next__(self) -> Frame:
        frame = self.next_frame()
        if frame is None:
            raise StopIteration
        return frame

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None until more bytes are fed."""
        view, pos = self._view, self._pos
        if pos == len(view) and self._current is None:
            return None  # everything fed has been returned (a split header is kept in _head, not in view)
        whole = self._current is None and not self._head and self._block is None
        if whole and len(view) - pos >= HEADER_SIZE:
            # Fast path for the frames of every reply, an unpadded DATA frame or a whole HEADERS block
            # lying complete in the fed bytes: the checks of the general path that can apply to them,
            # in one step (a small call's three reply frames cost 17 µs through the general path).
            high, low, kind, flags, stream = _HEADER.unpack_from(view, pos)
            length = (high << 8) | low
            start = pos + HEADER_SIZE
            end = start + length
            stream &= MAX_WINDOW
            if end <= len(view) and length <= self.max_frame_size and stream:
                if kind == DATA and not flags & PADDED:
                    self._pos = end
                    self.last_padding = 0
                    return _frame(Frame, (DATA, flags, stream, view[start:end]))
                if kind == HEADERS and flags & END_HEADERS and not flags & (PADDED | PRIORITY_FLAG):
                    self._check_block_size(length)
                    self._pos = end
                    return _frame(Frame, (HEADERS, flags, stream, bytes(view[start:end])))
        while True:
            raw = self._next_raw()
            if raw is None:
                return None
            frame = self._check(*raw)
            if frame is not None:
                return frame

    def _next_raw(self) -> tuple[int, int, int, bytes | memoryview] | None:
        view, pos = self._view, self._pos
        if self._current is None:
            if self._head:
                take = min(HEADER_SIZE - len(self._head), len(view) - pos)
                self._head += view[pos : pos + take]
                pos += take
                self._pos = pos
                if len(self._head) < HEADER_SIZE:
                    return None
                high, low, kind, flags, stream = _HEADER.unpack(self._head)
                self._head.clear()
            elif len(view) - pos >= HEADER_SIZE:
                high, low, kind, flags, stream = _HEADER.unpack_from(view, pos)
                pos += HEADER_SIZE
                self._pos = pos
            else:
                self._head += view[pos:]
                self._pos = len(view)
                return None
            length = (high << 8) | low
            if length > self.max_frame_size:
                raise ConnectionProtocolError(
                    ErrorCode.FRAME_SIZE_ERROR,
                    f"a frame of {length} bytes exceeds the maximum frame size {self.max_frame_size}",
                )
            self._current = (length, kind, flags, stream & MAX_WINDOW)
            self._body, self._filled = None, 0
        length, kind, flags, stream = self._current
        payload: bytes | memoryview
        if self._body is None:
            if len(view) - pos >= length:
                payload = view[pos : pos + length]
                self._pos = pos + length
            else:
                self._body = bytearray(length)
                self._filled = len(view) - pos
                self._body[: self._filled] = view[pos:]
                self._pos = len(view)
                return None
        else:
            take = min(length - self._filled, len(view) - pos)
            self._body[self._filled : self._filled + take] = view[pos : pos + take]
            self._filled += take
            self._pos = pos + take
            if self._filled < length:
                return None
            payload = memoryview(self._body)
            self._body, self._filled = None, 0
        self._current = None
        return kind, flags, stream, payload

    def _check(self, kind: int, flags: int, stream: int, payload: bytes | memoryview) -> Frame | None:
        if self._block is not None:
            return self._continue_block(kind, flags, stream, payload)
        if kind in _NEEDS_STREAM and stream == 0:
            raise ConnectionProtocolError(ErrorCode.PROTOCOL_ERROR, f"a frame of type {kind} on stream 0")
        if kind in _CONNECTION_ONLY and stream != 0:
            raise ConnectionProtocolError(
                ErrorCode.PROTOCOL_ERROR,
                f"a frame of type {kind} on stream {stream} (it belongs to stream 0)",
            )
        expected = _FIXED_LENGTH.get(kind)
        if expected is not None and len(payload) != expected:
            raise ConnectionProtocolError(
                ErrorCode.FRAME_SIZE_ERROR, f"a frame of type {kind} has {len(payload)} bytes, not {expected}"
            )
        if kind == DATA:
            if flags & PADDED:
                body = self._unpad(payload)
                self.last_padding = len(payload) - len(body)
                return Frame(DATA, flags & ~PADDED, stream, body)
            self.last_padding = 0
            return Frame(DATA, flags, stream, payload)
        if kind in (HEADERS, PUSH_PROMISE):
            body = self._unpad(payload) if flags & PADDED else payload
            if kind == HEADERS and flags & PRIORITY_FLAG:
                if len(body) < 5:
                    raise ConnectionProtocolError(
                        ErrorCode.FRAME_SIZE_ERROR, "a HEADERS frame too short for its priority"
                    )
                body = body[5:]
            flags &= ~(PADDED | PRIORITY_FLAG)
            if kind == PUSH_PROMISE and len(body) < 4:
                raise ConnectionProtocolError(
                    ErrorCode.FRAME_SIZE_ERROR, "a PUSH_PROMISE frame without a stream id"
                )
            if flags & END_HEADERS:
                self._check_block_size(len(body))
                return Frame(kind, flags, stream, bytes(body))
            self._check_block_size(len(body))
            self._block = bytearray(body)
            self._block_frame = (kind, flags, stream)
            return None
        if kind == CONTINUATION:
            raise ConnectionProtocolError(
                ErrorCode.PROTOCOL_ERROR, f"a CONTINUATION frame on stream {stream} without HEADERS"
            )
        if kind == SETTINGS and flags & ACK and payload:
            raise ConnectionProtocolError(
                ErrorCode.FRAME_SIZE_ERROR, "a SETTINGS acknowledgement with a payload"
            )
        if kind == SETTINGS and len(payload) % 6:
            raise ConnectionProtocolError(
                ErrorCode.FRAME_SIZE_ERROR, f"a SETTINGS payload is a multiple of 6 bytes, not {len(payload)}"
            )
        if kind == GOAWAY and len(payload) < 8:
            raise ConnectionProtocolError(
                ErrorCode.FRAME_SIZE_ERROR, f"a GOAWAY frame of {len(payload)} bytes"
            )
        return Frame(kind, flags, stream, bytes(payload))

    def _continue_block(
        self, kind: int, flags: int, stream: int, payload: bytes | memoryview
    ) -> Frame | None:
        assert self._block is not None
        first_kind, first_flags, first_stream = self._block_frame
        if kind != CONTINUATION or stream != first_stream:
            raise ConnectionProtocolError(
                ErrorCode.PROTOCOL_ERROR,
                f"expected CONTINUATION on stream {first_stream}, got type {kind} on stream {stream}",
            )
        self._check_block_size(len(self._block) + len(payload))
        self._block += payload
        if not flags & END_HEADERS:
            return None
        block, self._block = bytes(self._block), None
        return Frame(first_kind, first_flags | END_HEADERS, first_stream, block)

    def _check_block_size(self, size: int) -> None:
        if size > self.max_header_block:
            raise ConnectionProtocolError(
                ErrorCode.ENHANCE_YOUR_CALM, f"a header block of more than {self.max_header_block} bytes"
            )

    @staticmethod
    def _unpad(payload: bytes | memoryview) -> bytes | memoryview:
        if not payload:
            raise ConnectionProtocolError(ErrorCode.FRAME_SIZE_ERROR, "a padded frame without its pad length")
        pad = payload[0]
        if pad >= len(payload):
            raise ConnectionProtocolError(
                ErrorCode.PROTOCOL_ERROR, f"padding of {pad} bytes in a frame of {len(payload)} bytes"
            )
        return payload[1 : len(payload) - pad]
