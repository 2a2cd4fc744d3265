"""gRPC message compression on the server: gzip replies when asked to, compressed requests always.

grpclib, which serves the embedded server, implements no compression: it rejects a request message with
the compressed flag and never compresses a reply. This module adds both around it, per call:

* :func:`install` records, for every call a grpclib server accepts, the two request headers that matter:
  ``grpc-accept-encoding`` (does the client read gzip?) and ``grpc-encoding`` (is the request compressed,
  and how?). It wraps the connection handler's ``accept``, where grpclib still has the raw headers.
* :func:`receive_request` reads a request message, inflating it (gzip or deflate) with a bound on the
  inflated size, when the call's ``grpc-encoding`` says it may be compressed.
* :func:`send_reply` sends a reply gzip-compressed, with ``grpc-encoding: gzip`` in the reply headers,
  when the server runs with ``compression="gzip"`` and the client accepts gzip; otherwise it leaves the
  reply to the caller's usual path. Compressed messages go out through the direct sender
  (:mod:`.direct_send`), which takes the flag byte; large ones are compressed in a worker thread.

Like :mod:`.direct_send`, this relies on a few grpclib internals, checked by :func:`install`; when they
are missing nothing is compressed and compressed requests are refused by grpclib as before.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import anyio.to_thread
import betterproto2
import grpclib.server

from pingthings.server.errors import WrongArgs
from pingthings.server.service.arrow_reply import Segments
from pingthings.server.service.direct_send import direct_sender

GZIP_LEVEL = 1
"""zlib level of compressed replies: the fastest, which gets most of the saving on point data."""

MAX_INFLATED_REQUEST = 64 << 20
"""Largest request message accepted once inflated (bytes); a compressed request that grows past it is
refused with 421 without being inflated further."""

THREAD_THRESHOLD = 256 << 10
"""Replies at least this large are compressed in a worker thread, not in the event loop."""

_PREFIX = struct.Struct(">BI")
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_REQUIRED_SERVER_STREAM = ("_stream", "_codec", "_recv_type", "_dispatch", "_send_initial_metadata_done")


@dataclass(frozen=True)
class CallEncoding:
    """What one call's request headers said about compression.

    Attributes
    ----------
    compress_replies
        The server compresses replies and the client accepts gzip.
    request_encoding
        The request's ``grpc-encoding`` (lower case), or None for identity.
    """

    compress_replies: bool
    request_encoding: str | None


_CALLS: WeakKeyDictionary[Any, CallEncoding] = WeakKeyDictionary()


def _header_text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def encoding_of(headers: Any, compress_replies: bool) -> CallEncoding:
    """The :class:`CallEncoding` of a request's raw headers."""
    accepts, request = False, None
    for name, value in headers:
        key = _header_text(name).lower()
        if key == "grpc-accept-encoding":
            accepts = "gzip" in {part.strip().lower() for part in _header_text(value).split(",")}
        elif key == "grpc-encoding":
            text = _header_text(value).strip().lower()
            request = None if text == "identity" else text
    return CallEncoding(compress_replies and accepts, request)


def install(server: grpclib.server.Server, compression: str | None) -> bool:
    """Record every accepted call's compression headers; ``compression="gzip"`` compresses replies.

    Returns False (and changes nothing) when grpclib does not look as expected.
    """
    make_protocol = getattr(server, "_protocol_factory", None)
    if make_protocol is None:
        return False
    compress = compression == "gzip"

    def protocol_factory() -> Any:
        protocol = make_protocol()
        handler = getattr(protocol, "handler", None)
        accept = getattr(handler, "accept", None)
        if accept is None:
            return protocol

        def accept_and_record(stream: Any, headers: Any, release_stream: Any) -> None:
            _CALLS[stream] = encoding_of(headers, compress)
            accept(stream, headers, release_stream)

        handler.accept = accept_and_record  # type: ignore[union-attr]
        return protocol

    server._protocol_factory = protocol_factory  # type: ignore[method-assign]
    return True


def call_encoding(stream: grpclib.server.Stream[Any, Any]) -> CallEncoding | None:
    """The recorded encoding of the call on ``stream`` (None when nothing was recorded)."""
    inner = getattr(stream, "_stream", None)
    return None if inner is None else _CALLS.get(inner)


def inflate(data: bytes, encoding: str, limit: int = MAX_INFLATED_REQUEST) -> bytes:
    """Inflate one request message; refuse it once it passes ``limit`` bytes.

    Raises
    ------
    WrongArgs
        Unknown encoding, corrupt data, or too large once inflated (the client sees 421).
    """
    wbits = _WBITS.get(encoding)
    if wbits is None:
        raise WrongArgs(f"the request is compressed with {encoding!r}; this server reads gzip and deflate")
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise WrongArgs(f"the {encoding} request message is corrupt ({exc})") from None
    if len(out) > limit:
        raise WrongArgs(f"the {encoding} request message inflates past the limit of {limit} bytes")
    if not inflater.eof:
        raise WrongArgs(f"the {encoding} request message is truncated")
    return out


async def receive_request(stream: grpclib.server.Stream[Any, Any]) -> Any:
    """The next request message of the call, inflated if the client compressed it (None at the end)."""
    encoding = call_encoding(stream)
    if encoding is None or encoding.request_encoding is None:
        return await stream.recv_message()
    if not all(hasattr(stream, name) for name in _REQUIRED_SERVER_STREAM):
        return await stream.recv_message()  # pragma: no cover - grpclib changed
    inner = stream._stream
    head = await inner.recv_data(_PREFIX.size)
    if not head:
        return None
    flag, length = _PREFIX.unpack(head)
    if length > MAX_INFLATED_REQUEST:
        raise WrongArgs(f"the request message is {length} bytes, above the limit of {MAX_INFLATED_REQUEST}")
    data = await inner.recv_data(length)
    if flag:
        data = inflate(data, encoding.request_encoding)
    message = stream._codec.decode(data, stream._recv_type)
    (message,) = await stream._dispatch.recv_message(message)
    return message


def _reply_bytes(reply: Any) -> bytes:
    if isinstance(reply, Segments):
        return reply.join()
    if isinstance(reply, betterproto2.Message):
        return bytes(reply)
    return bytes(reply)


def _gzip(data: bytes) -> bytes:
    packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


async def send_reply(stream: grpclib.server.Stream[Any, Any], reply: Any) -> bool:
    """Send ``reply`` gzip-compressed if this call should be; return False (nothing sent) if not."""
    encoding = call_encoding(stream)
    if encoding is None or not encoding.compress_replies:
        return False
    sender = direct_sender(stream)
    if sender is None or not hasattr(stream, "_content_type"):
        return False
    data = _reply_bytes(reply)
    packed = await anyio.to_thread.run_sync(_gzip, data) if len(data) >= THREAD_THRESHOLD else _gzip(data)
    if not stream._send_initial_metadata_done:
        headers = [(":status", "200"), ("content-type", stream._content_type), ("grpc-encoding", "gzip")]
        await stream._stream.send_headers(headers)
        stream._send_initial_metadata_done = True
    await sender.send(packed, compressed=True)
    return True
