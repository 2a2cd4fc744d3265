"""gRPC message compression: the encodings we read, and gzip for requests.

A gRPC peer marks a compressed message with flag byte 1 and names the algorithm once, in the
``grpc-encoding`` header of the reply. Stock BTrDB servers (grpc-go with a gzip compressor) compress every
reply whatever the client advertised, so the client must read gzip; ``deflate`` (the zlib format, as gRPC
uses it) costs nothing more to support. Both come from the standard library's :mod:`zlib`.

Decompression is streaming: the compressed bytes of a message are inflated as they arrive and dropped, and
the inflated size is checked against the receive limit after every piece, so a small message that would
inflate to gigabytes (a compression bomb) is refused once it passes the limit, never buffered whole.
"""

from __future__ import annotations

import zlib

IDENTITY = "identity"

#: zlib ``wbits`` for each encoding we can read: gzip has its own header, deflate is the zlib format.
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}

#: Encodings we accept in replies, in order of preference (the ``grpc-accept-encoding`` request header).
ACCEPTED_ENCODINGS = ("gzip", "deflate", IDENTITY)

#: Encodings the client can compress requests with.
REQUEST_ENCODINGS = ("gzip",)

REQUEST_GZIP_LEVEL = 1
"""zlib level for compressed requests: the fastest one, which already gets most of the saving on point
data (a slower level would cost more CPU than it saves on the link)."""


class CompressionError(ValueError):
    """A compressed message could not be read: unknown encoding, corrupt data, or too large once inflated."""


def check_encoding(name: str) -> str:
    """Return ``name`` (lower-cased) if replies in that ``grpc-encoding`` can be read.

    Raises
    ------
    CompressionError
        For an encoding this client does not implement; the message names it.
    """
    key = name.strip().lower()
    if key != IDENTITY and key not in _WBITS:
        raise CompressionError(
            f"server compressed a message with grpc-encoding {name!r}, which this client cannot read "
            f"(it reads {', '.join(ACCEPTED_ENCODINGS)})"
        )
    return key


def check_request_compression(name: str | None) -> str | None:
    """Validate a request-compression setting: None (or ``"identity"``/``"none"``/``""``) or ``"gzip"``.

    Raises
    ------
    ValueError
        For anything else, naming the accepted values.
    """
    if name is None:
        return None
    if not isinstance(name, str):
        raise ValueError(f"compression must be a str or None, got {type(name).__name__}")
    key = name.strip().lower()
    if key in ("", "none", IDENTITY):
        return None
    if key not in REQUEST_ENCODINGS:
        raise ValueError(f"compression must be 'gzip' or None, got {name!r}")
    return key


def compress_request(payload: bytes | memoryview) -> bytes:
    """gzip one request message (the caller sets flag byte 1 and ``grpc-encoding: gzip``)."""
    packer = zlib.compressobj(REQUEST_GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return packer.compress(payload) + packer.flush()


class Inflater:
    """Inflates one compressed message piece by piece, refusing to grow past ``limit`` bytes.

    Parameters
    ----------
    encoding
        ``"gzip"`` or ``"deflate"`` (already checked by :func:`check_encoding`).
    limit
        Largest inflated size accepted (the channel's receive limit).
    """

    __slots__ = ("_encoding", "_limit", "_parts", "_size", "_zlib")

    def __init__(self, encoding: str, limit: int) -> None:
        self._encoding = encoding
        self._zlib = zlib.decompressobj(_WBITS[encoding])
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes | memoryview) -> None:
        """Inflate the next piece of the compressed message.

        Raises
        ------
        CompressionError
            The data is not valid for the encoding, or the message grew past the limit.
        """
        room = self._limit - self._size
        try:
            # At most room + 1 bytes come out: one byte past the limit proves the message too large
            # without inflating the rest (zlib keeps the unread input in unconsumed_tail).
            out = self._zlib.decompress(data, room + 1)
        except zlib.error as exc:
            raise CompressionError(f"corrupt {self._encoding} message from the server ({exc})") from None
        if len(out) > room:
            raise CompressionError(
                f"server sent a {self._encoding} message that inflates past the limit of {self._limit} "
                "bytes; refused"
            )
        if out:
            self._parts.append(out)
            self._size += len(out)

    def finish(self) -> bytes:
        """The whole inflated message, once every compressed byte was fed.

        Raises
        ------
        CompressionError
            The compressed data ended early or carried bytes after its end.
        """
        if not self._zlib.eof:
            raise CompressionError(f"server sent a truncated {self._encoding} message")
        if self._zlib.unused_data:
            raise CompressionError(f"server sent bytes after the end of a {self._encoding} message")
        parts, self._parts = self._parts, []
        return parts[0] if len(parts) == 1 else b"".join(parts)
