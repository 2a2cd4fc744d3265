"""Bounding request messages from their gRPC length prefix, before the body is read.

grpclib reads a request by taking the 5-byte prefix and then awaiting the whole body it
announces, acknowledging (and so inviting) every byte on the way: a prefix claiming 2 GB makes the
server buffer whatever the client sends. :func:`bound_requests` replaces the call's
``recv_message`` with one that checks the announced length first and raises
:class:`~pingthings.server.errors.MessageTooLarge` without reading the body; the handler answers
with a v5 status like any other error and :meth:`RequestBound.finish` then resets the stream, so
the client stops sending. Messages decoded here into message classes (the platform service's)
are checked strictly first (:func:`~.wire_check.decode_request`): malformed input is a 421.
Unread bytes stay unacknowledged, so HTTP/2 flow control caps what the client can push meanwhile
(grpclib returns them to the connection window when the stream is released).

This reads a few grpclib internals (the call's protocol stream, codec, request type and event
dispatch); :func:`bound_requests` checks them and leaves the call as it is when any is missing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import betterproto2
import grpclib.server
from h2.errors import ErrorCodes

from pingthings.server.errors import MessageTooLarge, WrongArgs
from pingthings.server.service.wire_check import decode_request

log = logging.getLogger("pingthings.server")

_PREFIX_BYTES = 5
_REQUIRED_STREAM = ("_stream", "_codec", "_recv_type", "_dispatch", "_messages_received")
_REQUIRED_PROTOCOL = ("recv_data", "connection", "reset_nowait", "closable")
_warned = False


class RequestBound:
    """The bounded reader of one call (see :func:`bound_requests`)."""

    def __init__(self, stream: grpclib.server.Stream[Any, Any], limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self.refused = False

    async def recv_message(self) -> Any:
        """Receive one request message, refusing it from its prefix when it is over the limit."""
        stream = self._stream
        if self.refused:
            return None
        proto = stream._stream
        try:
            prefix = await proto.recv_data(_PREFIX_BYTES)
        except AssertionError:  # grpclib: the stream ended inside the prefix
            raise WrongArgs("the request ended inside a message's 5-byte length prefix") from None
        if not prefix:
            return None
        if len(prefix) != _PREFIX_BYTES:
            raise WrongArgs("the request ended inside a message's 5-byte length prefix")
        if prefix[0]:
            raise WrongArgs("compressed request messages are not supported (no grpc-encoding was agreed)")
        size = int.from_bytes(prefix[1:5], "big")
        if size > self._limit:
            self.refused = True
            raise MessageTooLarge(
                f"request message of {size} bytes exceeds the server's limit of {self._limit} bytes "
                "(max_message_bytes); send the data in smaller requests"
            )
        try:
            body = await proto.recv_data(size) if size else b""
        except AssertionError:  # grpclib: the stream ended before the announced length
            body = None
        if body is None or len(body) != size:
            raise WrongArgs(f"the request message announced {size} bytes but the stream ended before them")
        recv_type = stream._recv_type
        if isinstance(recv_type, type) and issubclass(recv_type, betterproto2.Message):
            message = decode_request(body, recv_type)  # strict: a malformed request is a 421
        else:
            message = stream._codec.decode(body, recv_type)
        (message,) = await stream._dispatch.recv_message(message)
        stream._messages_received += 1
        connection = proto.connection
        connection.messages_received += 1
        connection.last_message_received = time.monotonic()
        return message

    async def finish(self) -> None:
        """After the handler: if a message was refused, end the call and reset the stream."""
        if not self.refused:
            return
        stream: Any = self._stream
        if not stream._send_trailing_metadata_done:
            try:
                await stream.send_trailing_metadata()
            except Exception:  # the peer went away meanwhile; the reset below still applies
                log.debug("could not end a refused call cleanly", exc_info=True)
        proto = stream._stream
        if proto.closable:
            proto.reset_nowait(ErrorCodes.NO_ERROR)


def bound_requests(stream: grpclib.server.Stream[Any, Any], limit: int) -> RequestBound | None:
    """Make ``stream.recv_message`` refuse messages over ``limit`` bytes; None if grpclib changed."""
    global _warned
    if not all(hasattr(stream, name) for name in _REQUIRED_STREAM) or not all(
        hasattr(stream._stream, name) for name in _REQUIRED_PROTOCOL
    ):
        if not _warned:
            _warned = True
            log.warning("grpclib internals changed: request messages are not bounded by max_message_bytes")
        return None
    bound = RequestBound(stream, limit)
    stream.recv_message = bound.recv_message  # type: ignore[method-assign]
    return bound
