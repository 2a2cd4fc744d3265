"""Adapters from plain async handler functions to the gRPC layer's call handlers.

A unary handler is ``async def f(request) -> reply`` and a server-streaming handler is an async
generator ``async def f(request) -> AsyncIterator[reply]``; a reply is ``bytes``, a buffer,
:class:`~.arrow_reply.Segments` or a betterproto2 message. The adapters decode the request
strictly (malformed → 421), turn any exception into a reply carrying ``stat`` (gRPC status stays
OK), and, for streams, end with one message carrying the error after whatever data was already
sent. A unary reply leaves with its headers and trailers in one write when it can
(:meth:`~pingthings.server.grpc.call.Call.send_unary`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import betterproto2

from pingthings.server.errors import WrongArgs
from pingthings.server.grpc.call import Call
from pingthings.server.grpc.dispatch import Method
from pingthings.server.service.arrow_reply import Segments
from pingthings.server.service.replies import error_reply
from pingthings.server.service.wire_check import decode_request

Reply = bytes | betterproto2.Message | Segments


async def _receive(call: Call, request_cls: type[betterproto2.Message] | None) -> Any:
    data = await call.recv_message()
    if data is None:
        raise WrongArgs("the call carried no request message")
    if request_cls is None:
        return data
    return decode_request(data, request_cls)


def unary(
    fn: Callable[[Any], Awaitable[Reply]], request_cls: type[betterproto2.Message] | None, eager: bool = False
) -> Method:
    """Wrap a unary handler; ``request_cls=None`` hands the handler the raw request bytes.

    ``eager``: the handler starts in the turn its request arrived, without a task until it waits
    (see :class:`~pingthings.server.grpc.dispatch.Method` for what such a handler may do).
    """

    async def handle(call: Call) -> None:
        try:
            request = await _receive(call, request_cls)
            reply: Reply = await fn(request)
        except Exception as exc:
            reply = error_reply(exc)
        if not call.send_unary(reply):
            await call.send_message(reply)

    return Method(handle, unary=True, eager=eager)


def server_stream(
    fn: Callable[[Any], AsyncIterator[Reply]], request_cls: type[betterproto2.Message] | None
) -> Method:
    """Wrap a server-streaming handler (an async generator of replies)."""

    async def handle(call: Call) -> None:
        try:
            request = await _receive(call, request_cls)
        except Exception as exc:
            await call.send_message(error_reply(exc))
            return
        replies = fn(request)
        try:
            while True:
                try:
                    reply = await replies.__anext__()
                except StopAsyncIteration:
                    break
                except Exception as exc:
                    await call.send_message(error_reply(exc))
                    break
                await call.send_message(reply)
        finally:
            await replies.aclose()  # type: ignore[attr-defined]

    return Method(handle, unary=False)
