"""gRPC message compression on the server: gzip replies when asked to, compressed requests always.

Per call, two request headers matter: ``grpc-accept-encoding`` (does the client read gzip?) and
``grpc-encoding`` (is the request compressed, and how?). :func:`negotiate` turns them into a
:class:`CallEncoding`; the gRPC layer (:mod:`pingthings.server.grpc.call`) then inflates compressed
request messages with :func:`inflate` (gzip or deflate, bounded) and, when the server runs with
``compression="gzip"`` and the client accepts gzip, sends every reply through :func:`gzip_bytes`
with ``grpc-encoding: gzip`` in the reply headers (large replies are compressed in a worker thread).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from pingthings.server.errors import WrongArgs

GZIP_LEVEL = 1
"""zlib level of compressed replies: the fastest, which gets most of the saving on point data."""

MAX_INFLATED_REQUEST = 64 << 20
"""Largest request message accepted once inflated (bytes); a compressed request that grows past it is
refused with 421 without being inflated further."""

THREAD_THRESHOLD = 256 << 10
"""Replies at least this large are compressed in a worker thread, not in the event loop."""

_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


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


#: The encoding of almost every call (nothing compressed): one shared answer, no object per call.
_PLAIN = CallEncoding(False, None)


def negotiate(
    grpc_encoding: bytes | None, accept_encoding: bytes | None, compress_replies: bool
) -> CallEncoding:
    """The :class:`CallEncoding` of a call from its ``grpc-encoding`` and ``grpc-accept-encoding``."""
    if grpc_encoding is None and not compress_replies:
        return _PLAIN
    accepts = False
    if accept_encoding is not None and compress_replies:
        accepts = "gzip" in {part.strip().lower() for part in accept_encoding.decode("latin-1").split(",")}
    request = None
    if grpc_encoding is not None:
        text = grpc_encoding.decode("latin-1").strip().lower()
        request = None if text == "identity" else text
    return CallEncoding(compress_replies and accepts, request)


def encoding_of(headers: Iterable[tuple[bytes, bytes]], compress_replies: bool) -> CallEncoding:
    """The :class:`CallEncoding` of a request's raw headers."""
    found = {name.lower(): value for name, value in headers}
    return negotiate(found.get(b"grpc-encoding"), found.get(b"grpc-accept-encoding"), compress_replies)


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


def gzip_bytes(data: bytes) -> bytes:
    """``data`` gzip-compressed at :data:`GZIP_LEVEL`."""
    packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()
