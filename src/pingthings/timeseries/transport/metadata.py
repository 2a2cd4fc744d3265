"""gRPC-over-HTTP/2 headers: request headers, ``grpc-timeout``, custom metadata and response status.

The rules follow the gRPC HTTP/2 protocol description: requests are ``POST`` with
``content-type: application/grpc`` and ``te: trailers``; the final status arrives as ``grpc-status`` and a
percent-encoded ``grpc-message``, either in trailers or, for a "trailers-only" reply, in the response headers.
Metadata keys ending in ``-bin`` carry binary values, base64-encoded on the wire.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterable, Sequence
from urllib.parse import unquote

from pingthings import __version__

from .compression import ACCEPTED_ENCODINGS
from .errors import GrpcStatus

USER_AGENT = f"pingthings/{__version__}"

MetadataValue = str | bytes
Metadata = Sequence[tuple[str, MetadataValue]]
HeaderList = list[tuple[bytes, bytes]]

_KEY_PATTERN = re.compile(r"^[0-9a-z_.\-]+$")
_RESERVED_KEYS = frozenset(
    {"content-type", "te", "user-agent", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding"}
)

# Units of grpc-timeout, finest first; the value may have at most 8 digits.
_TIMEOUT_UNITS = (("n", 1e-9), ("u", 1e-6), ("m", 1e-3), ("S", 1.0), ("M", 60.0), ("H", 3600.0))

# HTTP status to gRPC status, for replies that are not gRPC at all (proxies, wrong port).
_HTTP_TO_GRPC = {
    400: GrpcStatus.INTERNAL,
    401: GrpcStatus.UNAUTHENTICATED,
    403: GrpcStatus.PERMISSION_DENIED,
    404: GrpcStatus.UNIMPLEMENTED,
    429: GrpcStatus.UNAVAILABLE,
    502: GrpcStatus.UNAVAILABLE,
    503: GrpcStatus.UNAVAILABLE,
    504: GrpcStatus.UNAVAILABLE,
}


def encode_timeout(seconds: float) -> str:
    """Encode a positive timeout as a ``grpc-timeout`` value (at most 8 digits, rounded up)."""
    if seconds <= 0:
        return "1n"
    for unit, scale in _TIMEOUT_UNITS:
        value = math.ceil(seconds / scale)
        if value < 100_000_000:
            return f"{value}{unit}"
    return "99999999H"


def encode_timeout_header(seconds: float) -> bytes:
    """The HPACK encoding of a ``grpc-timeout`` header for ``seconds``, appended to a cached request block.

    A literal "without indexing" with a literal name: it leaves the server's dynamic table alone, so the
    block it is appended to stays valid.
    """
    value = encode_timeout(seconds).encode("ascii")
    return _TIMEOUT_NAME + bytes((len(value),)) + value


_TIMEOUT_NAME = b"\x00\x0cgrpc-timeout"
"""``grpc-timeout`` as the start of a literal without indexing (flag byte 0, name length 12, name)."""


def encode_metadata(metadata: Iterable[tuple[str, MetadataValue]]) -> HeaderList:
    """Validate user metadata and turn it into header pairs.

    Raises
    ------
    ValueError
        For a key that is not lower-case ASCII letters, digits, ``-``, ``_`` or ``.``, a reserved key, or a
        value of the wrong type.
    """
    headers: HeaderList = []
    for item in metadata:
        try:
            key, value = item
        except (TypeError, ValueError):
            raise ValueError(f"metadata items must be (key, value) pairs, got {item!r}") from None
        if not isinstance(key, str) or not _KEY_PATTERN.match(key):
            raise ValueError(
                f"invalid metadata key {key!r}: use lower-case ASCII letters, digits, '-', '_' or '.'"
            )
        if key.startswith("grpc-") or key in _RESERVED_KEYS:
            raise ValueError(f"metadata key {key!r} is reserved by gRPC and cannot be set")
        if key.endswith("-bin"):
            if isinstance(value, str):
                value = value.encode()
            if not isinstance(value, bytes | bytearray | memoryview):
                raise ValueError(f"metadata value for binary key {key!r} must be bytes, got {type(value)}")
            encoded = base64.b64encode(bytes(value)).rstrip(b"=")
        else:
            if not isinstance(value, str):
                raise ValueError(f"metadata value for {key!r} must be str, got {type(value).__name__}")
            if not value.isascii() or not value.isprintable():
                raise ValueError(f"metadata value for {key!r} must be printable ASCII")
            encoded = value.encode("ascii")
        headers.append((key.encode("ascii"), encoded))
    return headers


def request_headers(
    *,
    method: str,
    authority: str,
    scheme: str,
    timeout: float | None,
    metadata: HeaderList,
) -> HeaderList:
    """Build the HEADERS block of a gRPC request."""
    headers: HeaderList = [
        (b":method", b"POST"),
        (b":scheme", scheme.encode("ascii")),
        (b":path", method.encode("ascii")),
        (b":authority", authority.encode("ascii")),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"user-agent", USER_AGENT.encode("ascii")),
    ]
    if timeout is not None:
        headers.append((b"grpc-timeout", encode_timeout(timeout).encode("ascii")))
    headers.extend(metadata)
    return headers


ACCEPT_ENCODING = ", ".join(ACCEPTED_ENCODINGS)
"""The ``grpc-accept-encoding`` every request carries: the reply encodings the message reader inflates."""


def encoding_headers(request_compression: str | None) -> HeaderList:
    """Headers about compression sent with every request: the encodings we read, and ``grpc-encoding``
    when requests are compressed (``request_compression``, already checked, e.g. ``"gzip"``)."""
    headers: HeaderList = [(b"grpc-accept-encoding", ACCEPT_ENCODING.encode("ascii"))]
    if request_compression is not None:
        headers.append((b"grpc-encoding", request_compression.encode("ascii")))
    return headers


def validate_method(method: str) -> None:
    """Check that ``method`` looks like ``/package.Service/Method``."""
    valid = isinstance(method, str) and method.isascii()
    if not valid or not method.startswith("/") or method.count("/") != 2:
        raise ValueError(f"invalid gRPC method path {method!r}; expected '/package.Service/Method'")


def header_dict(headers: Iterable[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """Headers as a dict (the last value wins for a repeated name)."""
    return {bytes(name): bytes(value) for name, value in headers}


def response_status(headers: dict[bytes, bytes]) -> tuple[int, str] | None:
    """Return ``(grpc-status, grpc-message)`` found in a header block, or None if it carries no status."""
    raw = headers.get(b"grpc-status")
    if raw is None:
        return None
    try:
        status = int(raw)
    except ValueError:
        return int(GrpcStatus.UNKNOWN), f"server sent an unparsable grpc-status {raw!r}"
    message = unquote(headers.get(b"grpc-message", b"").decode("utf-8", "replace"))
    return status, message


def check_response_headers(headers: dict[bytes, bytes]) -> tuple[int, str] | None:
    """Check the first header block of a reply; return a failure ``(status, message)`` or None if fine."""
    http_status = headers.get(b":status", b"")
    if http_status != b"200":
        try:
            code = int(http_status)
        except ValueError:
            code = 0
        grpc_status = _HTTP_TO_GRPC.get(code, GrpcStatus.UNKNOWN)
        found = response_status(headers)
        detail = f": {found[1]}" if found and found[1] else ""
        shown = http_status.decode(errors="replace")
        return int(grpc_status), f"server replied with HTTP status {shown}{detail}"
    content_type = headers.get(b"content-type", b"")
    if not content_type.startswith(b"application/grpc") and b"grpc-status" not in headers:
        # A trailers-only reply (some servers omit content-type there) is judged by its grpc-status.
        return (
            int(GrpcStatus.UNKNOWN),
            f"server replied with content-type {content_type.decode(errors='replace')!r}, "
            "not application/grpc",
        )
    return None
