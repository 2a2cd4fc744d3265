"""Every error the gRPC layer answers, and how: gRPC statuses in trailers, HTTP/2 errors in frames.

* :class:`GrpcError` raised by the call policy or a handler ends the call with its status.
* Any other exception escaping a handler ends the call with UNKNOWN (and is logged).
* :class:`~pingthings.wire.http2.frames.ConnectionProtocolError` (malformed frames or header
  blocks) ends the connection with a GOAWAY carrying its code; a stream-level protocol error
  resets that stream only.
* Requests that are not gRPC at all (wrong method, content type, missing ``te: trailers``) get
  the HTTP status gRPC prescribes, with a gRPC status too.
"""

from __future__ import annotations

from pingthings.wire.grpc_status import GrpcStatus
from pingthings.wire.http2 import frames
from pingthings.wire.http2.hpack import HeaderEncoder

CONTENT_TYPE = b"application/grpc"

#: The stateless encoder every connection shares (its blocks never depend on the peer).
ENCODER = HeaderEncoder()


class GrpcError(Exception):
    """End the call with gRPC ``status`` and ``message`` (sent in the trailers)."""

    def __init__(self, status: GrpcStatus, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class HttpRefusal(Exception):
    """The request is not a gRPC call this server takes: answer with an HTTP status and end it."""

    def __init__(self, http_status: int, status: GrpcStatus, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.status = status
        self.message = message


def _percent_encode(message: str) -> bytes:
    """``grpc-message`` encoding: UTF-8, then every byte outside printable ASCII and ``%`` as ``%XX``."""
    out = bytearray()
    for byte in message.encode("utf-8"):
        if 0x20 <= byte <= 0x7E and byte != 0x25:
            out.append(byte)
        else:
            out += b"%%%02X" % byte
    return bytes(out)


RESPONSE_HEADERS = ENCODER.encode([(b":status", b"200"), (b"content-type", CONTENT_TYPE)])
RESPONSE_HEADERS_GZIP = ENCODER.encode(
    [(b":status", b"200"), (b"content-type", CONTENT_TYPE), (b"grpc-encoding", b"gzip")]
)
TRAILERS_OK = ENCODER.encode([(b"grpc-status", b"0")])


def trailers_block(status: int, message: str | None, headers_sent: bool, http_status: int = 200) -> bytes:
    """The header block that ends a call: trailers, or a trailers-only response if nothing was sent."""
    if status == 0 and not message:
        if headers_sent:
            return TRAILERS_OK
        return ENCODER.encode_cached(
            "trailers-only-ok",
            [(b":status", b"200"), (b"content-type", CONTENT_TYPE), (b"grpc-status", b"0")],
        )
    fields: list[tuple[bytes, bytes]] = []
    if not headers_sent:
        fields += [(b":status", str(http_status).encode()), (b"content-type", CONTENT_TYPE)]
    fields.append((b"grpc-status", str(int(status)).encode()))
    if message:
        fields.append((b"grpc-message", _percent_encode(message)))
    return ENCODER.encode(fields)


def headers_frame(stream_id: int, block: bytes, end_stream: bool, max_frame: int) -> bytes:
    """HEADERS (+ CONTINUATION) frames for ``block`` as one buffer."""
    if len(block) <= max_frame:
        flags = frames.END_HEADERS | (frames.END_STREAM if end_stream else 0)
        return frames.frame_header(len(block), frames.HEADERS, flags, stream_id) + block
    return b"".join(frames.headers_frames(stream_id, block, end_stream, max_frame))


__all__ = ["GrpcError", "GrpcStatus", "HttpRefusal", "headers_frame", "trailers_block"]
