"""Status 405 (the server is not the stream's owner) and retrying through proxy endpoints.

A node of a BTrDB cluster answers a call about a stream it does not hold with
``[405] This is the wrong endpoint for this stream``. A cluster reached through proxies lists them in Info
(``proxy.proxy_endpoints``); a proxy forwards every call to the right node. So when a call about a stream
comes back with 405 and Info listed proxy endpoints other than the one the client is connected to, the
client sends that call again through each of them in turn (a channel per proxy, opened on first use
with the client's own TLS, key and compression settings). When there is no proxy, or every proxy also
answers 405, the call raises :class:`~pingthings.timeseries.exceptions.WrongEndpointError` naming the
endpoints that answered.

The check reads only the ``stat`` field at the front of the first reply message, so it costs nothing
measurable on reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from pingthings.timeseries.exceptions import ConnectionError, WrongEndpointError, error_from_grpc_status
from pingthings.timeseries.transport import Channel, ChannelError, GrpcStatusError
from pingthings.wire.protowire import VARINT, WireFormatError, read_key, read_length, read_varint, skip_field
from pingthings.wire.status import StatusCode


class ProxyTarget(Protocol):
    """What the 405 handling needs from the client (an ``AsyncClient`` is one)."""

    @property
    def endpoint(self) -> str:
        """``host:port`` of the server the client is connected to."""
        ...

    @property
    def proxy_endpoints(self) -> list[str]:
        """The proxy endpoints Info listed, other than :attr:`endpoint`."""
        ...

    def proxy_channel(self, endpoint: str) -> Channel:
        """The channel to one of :attr:`proxy_endpoints`."""
        ...

_STAT_KEY = 0x0A  # field 1 (stat), length-delimited: how every v5 response that carries a status begins


def is_wrong_endpoint(payload: bytes | memoryview) -> bool:
    """True if a v5 response message starts with a ``stat`` whose code is 405."""
    if len(payload) < 4 or payload[0] != _STAT_KEY:
        return False
    try:
        start, end = read_length(payload, 1, len(payload), 1)
        pos = start
        while pos < end:
            field, wire_type, pos = read_key(payload, pos, end)
            if field == 1 and wire_type == VARINT:
                code, pos = read_varint(payload, pos, end)
                return code == StatusCode.WRONG_ENDPOINT
            pos = skip_field(payload, pos, end, field, wire_type)
    except WireFormatError:
        return False
    return False


def wrong_endpoint_error(client: ProxyTarget, path: str, detail: str = "") -> WrongEndpointError:
    """The error for a call that every endpoint tried answered with 405."""
    proxies = client.proxy_endpoints
    if proxies:
        tried = ", then through the proxy endpoint(s) " + ", ".join(proxies) + " listed in Info, which"
    else:
        tried = " (Info lists no proxy endpoint to retry through), which"
    said = f" ({detail})" if detail else ""
    return WrongEndpointError(
        int(StatusCode.WRONG_ENDPOINT),
        f"{path} went to {client.endpoint}{tried} answered that it is not the owner of this stream"
        f"{said}; connect to the endpoint of the cluster node or proxy that serves it",
    )


def _translated(exc: ChannelError, endpoint: str, path: str) -> Exception:
    if isinstance(exc, GrpcStatusError):
        return error_from_grpc_status(exc.status, exc.message, endpoint, path)
    return ConnectionError(f"connection to the proxy {endpoint} failed during {path}: {exc.message}")


async def unary_through_proxies(
    client: ProxyTarget, path: str, request: bytes, timeout: float | None, detail: str
) -> bytes:
    """Send a unary call that answered 405 again through each proxy endpoint; the first other answer
    wins.

    Raises
    ------
    WrongEndpointError
        No proxy, or every proxy answered 405 too.
    """
    for endpoint in client.proxy_endpoints:
        channel = client.proxy_channel(endpoint)
        try:
            payload = await channel.unary(path, request, timeout=timeout)
        except ChannelError as exc:
            raise _translated(exc, endpoint, path) from exc
        if not is_wrong_endpoint(payload):
            return payload
    raise wrong_endpoint_error(client, path, detail)


class _Prepended:
    """An async iterator that yields ``first`` and then what ``rest`` yields."""

    __slots__ = ("_first", "_rest")

    def __init__(self, first: bytes | memoryview, rest: AsyncIterator[bytes | memoryview]) -> None:
        self._first: bytes | memoryview | None = first
        self._rest = rest

    def __aiter__(self) -> _Prepended:
        return self

    async def __anext__(self) -> bytes | memoryview:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return await self._rest.__anext__()


class _ProxyMessages:
    """Reply messages of a call re-sent through a proxy, with transport errors translated."""

    __slots__ = ("_endpoint", "_inner", "_path")

    def __init__(self, inner: AsyncIterator[bytes | memoryview], endpoint: str, path: str) -> None:
        self._inner, self._endpoint, self._path = inner, endpoint, path

    def __aiter__(self) -> _ProxyMessages:
        return self

    async def __anext__(self) -> bytes | memoryview:
        try:
            return await self._inner.__anext__()
        except ChannelError as exc:
            raise _translated(exc, self._endpoint, self._path) from exc


@asynccontextmanager
async def stream_with_proxy_fallback(
    client: ProxyTarget, path: str, request: bytes, messages: AsyncIterator[bytes | memoryview]
) -> AsyncIterator[AsyncIterator[bytes | memoryview]]:
    """The reply messages of a server-streaming call, re-sent through the proxies if the first message
    says 405 (see the module docstring).

    Parameters
    ----------
    messages
        The replies of the call as first sent (already open).
    """
    first = await anext(messages, None)
    if first is None:
        yield messages
        return
    if not is_wrong_endpoint(first):
        yield _Prepended(first, messages)
        return
    for endpoint in client.proxy_endpoints:
        channel = client.proxy_channel(endpoint)
        try:
            async with channel.server_stream(path, request) as proxied:
                replies = _ProxyMessages(proxied.__aiter__(), endpoint, path)
                head = await anext(replies, None)
                if head is None:
                    yield replies
                    return
                if is_wrong_endpoint(head):
                    continue
                yield _Prepended(head, replies)
                return
        except ChannelError as exc:
            raise _translated(exc, endpoint, path) from exc
    raise wrong_endpoint_error(client, path)
