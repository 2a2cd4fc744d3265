"""Call plumbing shared by the client and the stream classes.

Every RPC goes through :func:`call_unary` or :func:`call_stream`. Both

* hold one token of the client's :class:`anyio.CapacityLimiter` for the whole call (so
  ``concurrency_limit`` bounds the calls in flight, streaming ones included);
* turn transport failures into :mod:`pingthings.timeseries.exceptions` errors that name the endpoint
  (gRPC-level UNAUTHENTICATED / PERMISSION_DENIED become :class:`PermissionDeniedError`).

:func:`call_unary` also decodes the response and raises for a non-zero ``stat``. :func:`call_stream`
hands the raw message payloads to the caller, which decodes them (points with
:mod:`pingthings.wire.points`, anything else with the message classes) and calls
:func:`~pingthings.timeseries.exceptions.raise_for_status` itself; :func:`decode_checked` does both
for control-plane messages.

"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import betterproto2

from pingthings.timeseries._endpoints import (
    is_wrong_endpoint,
    stream_with_proxy_fallback,
    unary_through_proxies,
    wrong_endpoint_error,
)
from pingthings.timeseries.exceptions import (
    ClientClosedError,
    ConnectionError,
    PingThingsError,
    WrongEndpointError,
    error_from_grpc_status,
    raise_for_status,
)
from pingthings.timeseries.transport import ChannelError, GrpcStatusError

if TYPE_CHECKING:
    from pingthings.timeseries.async_client import AsyncClient

T = TypeVar("T", bound=betterproto2.Message)

BTRDB_SERVICE = "v5api.BTrDB"
PLATFORM_SERVICE = "pingthings.platform.v1.Platform"


def method_path(method: str, service: str = BTRDB_SERVICE) -> str:
    """The gRPC path of a method: ``/v5api.BTrDB/RawValues``."""
    return f"/{service}/{method}"


def _as_bytes(request: bytes | bytearray | memoryview | betterproto2.Message) -> bytes:
    if isinstance(request, bytes | bytearray | memoryview):
        return bytes(request)
    if isinstance(request, betterproto2.Message):
        return bytes(request)
    raise TypeError(f"a request must be bytes or a message, got {type(request).__name__}")


def translate_channel_error(exc: ChannelError, client: AsyncClient, path: str) -> PingThingsError:
    """The client exception for a transport exception raised during the call to ``path``."""
    if isinstance(exc, GrpcStatusError):
        return error_from_grpc_status(exc.status, exc.message, client.endpoint, path)
    return ConnectionError(f"connection to {client.endpoint} failed during {path}: {exc.message}")


@contextmanager
def _translated(client: AsyncClient, path: str) -> Iterator[None]:
    try:
        yield
    except ChannelError as exc:
        raise translate_channel_error(exc, client, path) from exc


@asynccontextmanager
async def _limited(client: AsyncClient) -> AsyncIterator[None]:
    """Hold one limiter token for the duration (a fresh borrower per call, so one task may nest calls)."""
    if client.closed:
        raise ClientClosedError(f"the client for {client.endpoint} is closed; connect again")
    limiter = client.limiter
    borrower = object()
    await limiter.acquire_on_behalf_of(borrower)
    try:
        yield
    finally:
        limiter.release_on_behalf_of(borrower)


def check_stat(message: Any) -> None:
    """Raise for a decoded message whose ``stat`` is set with a non-zero code."""
    stat = getattr(message, "stat", None)
    if stat is not None and stat.code:
        raise_for_status(stat.code, stat.msg)


def decode_checked(payload: bytes | memoryview, response_type: type[T]) -> T:
    """Decode one response message and raise for its ``stat``."""
    message = response_type.parse(bytes(payload) if isinstance(payload, memoryview) else payload)
    check_stat(message)
    return message


async def call_unary(
    client: AsyncClient,
    method: str,
    request: betterproto2.Message | bytes,
    response_type: type[T],
    *,
    service: str = BTRDB_SERVICE,
    timeout: float | None = None,
) -> T:
    """Make one unary call and return the decoded response.

    Parameters
    ----------
    client
        The :class:`~pingthings.timeseries.async_client.AsyncClient` to call through.
    method
        The short method name, e.g. ``"Info"``.
    request
        The request message (or its encoded bytes).
    response_type
        The response message class.
    service
        ``"v5api.BTrDB"`` (default) or ``"pingthings.platform.v1.Platform"``.
    timeout
        Deadline in seconds (None: no deadline).

    Raises
    ------
    PingThingsError
        The subclass for the response's ``stat`` code, or for the transport failure.
    """
    path = f"/{service}/{method}"
    data = request if isinstance(request, bytes) else _as_bytes(request)
    if client.closed:
        raise ClientClosedError(f"the client for {client.endpoint} is closed; connect again")
    # Inlined limiter and error translation: this is the hot path of every control-plane call.
    limiter = client.limiter
    borrower = object()
    await limiter.acquire_on_behalf_of(borrower)
    try:
        payload = await client.channel.unary(path, data, timeout=timeout)
    except ChannelError as exc:
        raise translate_channel_error(exc, client, path) from exc
    finally:
        limiter.release_on_behalf_of(borrower)
    if payload[:1] == b"\x0a" and service == BTRDB_SERVICE and is_wrong_endpoint(payload):
        stat = response_type.parse(payload).stat  # type: ignore[attr-defined]
        payload = await unary_through_proxies(client, path, data, timeout, f"[405] {stat.msg}")
    return decode_checked(payload, response_type)


class _TranslatingIterator:
    """Async iterator over response payloads that converts transport errors as they surface."""

    __slots__ = ("_client", "_inner", "_path")

    def __init__(self, inner: AsyncIterator[bytes | memoryview], client: AsyncClient, path: str) -> None:
        self._inner = inner
        self._client = client
        self._path = path

    def __aiter__(self) -> _TranslatingIterator:
        return self

    async def __anext__(self) -> bytes | memoryview:
        try:
            return await self._inner.__anext__()
        except ChannelError as exc:
            raise translate_channel_error(exc, self._client, self._path) from exc


@asynccontextmanager
async def call_stream(
    client: AsyncClient,
    method: str,
    request: bytes | betterproto2.Message,
    *,
    service: str = BTRDB_SERVICE,
) -> AsyncIterator[AsyncIterator[bytes | memoryview]]:
    """Open a server-streaming call; yields an async iterator of raw response payloads
    (``bytes`` or ``memoryview``).

    The limiter token is held until the ``async with`` block exits. Leaving the block early (break,
    exception, cancellation) cancels the call on the server.

    Parameters
    ----------
    client
        The client to call through.
    method
        The short method name, e.g. ``"RawValues"``.
    request
        The request message or its encoded bytes.
    service
        ``"v5api.BTrDB"`` (default) or ``"pingthings.platform.v1.Platform"``.

    Examples
    --------
    >>> async with call_stream(client, "RawValues", params) as messages:  # doctest: +SKIP
    ...     async for payload in messages:
    ...         ...
    """
    path = method_path(method, service)
    data = _as_bytes(request)
    async with _limited(client):
        with _translated(client, path):
            async with client.channel.server_stream(path, data) as messages:
                replies = _TranslatingIterator(messages.__aiter__(), client, path)
                if service == BTRDB_SERVICE and client.proxy_endpoints:
                    # A 405 in the first reply sends the call again through the proxies (_endpoints).
                    async with stream_with_proxy_fallback(client, path, data, replies) as chosen:
                        yield chosen
                else:
                    try:
                        yield replies
                    except WrongEndpointError as exc:
                        raise wrong_endpoint_error(client, path, str(exc)) from exc


async def collect_stream(
    client: AsyncClient,
    method: str,
    request: betterproto2.Message,
    response_type: type[T],
    *,
    service: str = BTRDB_SERVICE,
) -> list[T]:
    """Run a server-streaming control-plane call to the end and return every decoded message."""
    out: list[T] = []
    async with call_stream(client, method, request, service=service) as messages:
        async for payload in messages:
            out.append(decode_checked(payload, response_type))
    return out
