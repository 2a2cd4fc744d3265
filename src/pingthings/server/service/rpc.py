"""Adapters from plain async handler functions to grpclib method handlers.

A unary handler is ``async def f(request) -> reply`` and a server-streaming handler is an async
generator ``async def f(request) -> AsyncIterator[reply]``; a reply is ``bytes`` or a betterproto2
message. The adapters decode the request strictly (malformed → 421), turn any exception into a
reply carrying ``stat`` (gRPC status stays OK), and, for streams, end with one message carrying
the error after whatever data was already sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import betterproto2
import grpclib.server

from pingthings.server.errors import WrongArgs
from pingthings.server.service.arrow_reply import Segments
from pingthings.server.service.compression import receive_request, send_reply
from pingthings.server.service.direct_send import DIRECT_MIN_BYTES, DirectSender, direct_sender
from pingthings.server.service.replies import error_reply
from pingthings.server.service.wire_check import decode_request
from pingthings.server.service.write_coalescing import coalesce_stream_writes

Reply = bytes | betterproto2.Message | Segments
GrpcHandler = Callable[[grpclib.server.Stream[Any, Any]], Awaitable[None]]


async def _receive(
    stream: grpclib.server.Stream[Any, Any], request_cls: type[betterproto2.Message] | None
) -> Any:
    data = await receive_request(stream)  # inflates a compressed request
    if data is None:
        raise WrongArgs("the call carried no request message")
    if request_cls is None:
        return data
    return decode_request(data, request_cls)


def unary(
    fn: Callable[[Any], Awaitable[Reply]], request_cls: type[betterproto2.Message] | None
) -> GrpcHandler:
    """Wrap a unary handler; ``request_cls=None`` hands the handler the raw request bytes."""

    async def handle(stream: grpclib.server.Stream[Any, Any]) -> None:
        coalesce_stream_writes(stream)  # headers, message and trailers leave in one write
        try:
            request = await _receive(stream, request_cls)
            reply: Reply = await fn(request)
        except Exception as exc:
            reply = error_reply(exc)
        if not await send_reply(stream, reply):  # gzip when the server and the client want it
            await stream.send_message(reply)

    return handle


async def _send(stream: grpclib.server.Stream[Any, Any], direct: DirectSender | None, reply: Any) -> None:
    """Send one reply: gzip-compressed when the call asks for it, else large buffers through ``direct``
    when there is one and the rest through grpclib."""
    if await send_reply(stream, reply):
        return
    if direct is not None and not isinstance(reply, betterproto2.Message) and len(reply) >= DIRECT_MIN_BYTES:
        await direct.send(reply)
    else:
        await stream.send_message(reply)


def server_stream(
    fn: Callable[[Any], AsyncIterator[Reply]], request_cls: type[betterproto2.Message] | None
) -> GrpcHandler:
    """Wrap a server-streaming handler (an async generator of replies)."""

    async def handle(stream: grpclib.server.Stream[Any, Any]) -> None:
        coalesce_stream_writes(stream)
        try:
            request = await _receive(stream, request_cls)
        except Exception as exc:
            await stream.send_message(error_reply(exc))
            return
        replies = fn(request)
        direct = direct_sender(stream)
        try:
            while True:
                try:
                    reply = await replies.__anext__()
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    await stream.send_message(error_reply(exc))
                    break
                await _send(stream, direct, reply)
        finally:
            await replies.aclose()  # type: ignore[attr-defined]

    return handle
