"""Call plumbing shared by the client and the stream classes.

Every RPC goes through :func:`call_unary` or :func:`call_stream`. Both

* hold one token of the client's :class:`anyio.CapacityLimiter` for the whole call (so
  ``concurrency_limit`` bounds the calls in flight, streaming ones included), and refuse a call at once
  with :class:`~pingthings.timeseries.exceptions.OverloadedError` when ``max_waiting`` calls already
  wait for a token;
* bound the call by the client's per-call timeout (:mod:`._call_policy`): a unary call, queueing for
  the limiter included, must finish within it; a streaming call must receive each message within it;
* try an idempotent call again after a connection failure, GOAWAY or UNAVAILABLE, with exponential
  backoff and jitter, within the retry count and budget (a streaming call only before its first message
  reached the caller);
* turn transport failures into :mod:`pingthings.timeseries.exceptions` errors that name the call and
  the endpoint once (gRPC-level UNAUTHENTICATED / PERMISSION_DENIED become
  :class:`PermissionDeniedError`);
* send a v5 call that a cluster node answers with 405 (not the stream's owner) again through the
  proxy endpoints Info listed (:mod:`._endpoints`).

:func:`call_unary` also decodes the response and raises for a non-zero ``stat``. :func:`call_stream`
hands the raw message payloads to the caller, which decodes them (points with
:mod:`pingthings.wire.points`, anything else with the message classes) and calls
:func:`~pingthings.timeseries.exceptions.raise_for_status` itself; :func:`decode_checked` does both
for control-plane messages.

The functions depend only on the small :class:`CallTarget` protocol, never on the client class.
"""

from __future__ import annotations

import math
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, Protocol, TypeVar

import anyio
import betterproto2

from pingthings.timeseries._call_policy import (
    IDEMPOTENT_METHODS,
    CallSettings,
    backoff,
    current_timeout,
    format_seconds,
)
from pingthings.timeseries._endpoints import (
    ProxyTarget,
    is_wrong_endpoint,
    stream_with_proxy_fallback,
    unary_through_proxies,
    wrong_endpoint_error,
)
from pingthings.timeseries._flat_messages import flat_encoder
from pingthings.timeseries.exceptions import (
    ClientClosedError,
    ConnectionError,
    DeadlineExceededError,
    OverloadedError,
    PingThingsError,
    WrongEndpointError,
    error_from_grpc_status,
    raise_for_status,
)
from pingthings.timeseries.transport import (
    Channel,
    ChannelError,
    GrpcStatusError,
    ServerStreamCall,
    TransportError,
)
from pingthings.timeseries.transport.errors import PeerUnresponsiveError
from pingthings.wire.grpc_status import GrpcStatus

T = TypeVar("T", bound=betterproto2.Message)

BTRDB_SERVICE = "v5api.BTrDB"
PLATFORM_SERVICE = "pingthings.platform.v1.Platform"


class CallTarget(ProxyTarget, Protocol):
    """What a call needs from the client it goes through (an
    :class:`~pingthings.timeseries.async_client.AsyncClient` is one); the proxy members come from
    :class:`~pingthings.timeseries._endpoints.ProxyTarget`."""

    @property
    def channel(self) -> Channel:
        """The gRPC channel."""
        ...

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        """The limiter every call holds a token of."""
        ...

    @property
    def endpoint(self) -> str:
        """``host:port`` of the server."""
        ...

    @property
    def closed(self) -> bool:
        """True once the client was closed."""
        ...

    @property
    def arrow_enabled(self) -> bool:
        """True when the server offers the Arrow RPCs."""
        ...

    @property
    def call_settings(self) -> CallSettings:
        """Timeout, retries and queue bound of the client's calls."""
        ...

    @property
    def insert_batch_size(self) -> int:
        """Points sent per Insert call (lowered when the server refuses a batch as too big)."""
        ...

    @insert_batch_size.setter
    def insert_batch_size(self, value: int) -> None: ...


def method_path(method: str, service: str = BTRDB_SERVICE) -> str:
    """The gRPC path of a method: ``/v5api.BTrDB/RawValues``."""
    return f"/{service}/{method}"


_ENCODERS: dict[type, Callable[[Any], bytes]] = {}
"""How a request of each message class is encoded: directly when the class is flat
(:func:`pingthings.timeseries._flat_messages.flat_encoder`: a class without fields encodes to nothing),
else by the generated encoder."""


def _encoder_of(kind: type) -> Callable[[Any], bytes]:
    encoder = _ENCODERS.get(kind)
    if encoder is None:
        encoder = _ENCODERS[kind] = flat_encoder(kind) or bytes
    return encoder


def _as_bytes(request: bytes | bytearray | memoryview | betterproto2.Message) -> bytes:
    if isinstance(request, bytes | bytearray | memoryview):
        return bytes(request)
    if isinstance(request, betterproto2.Message):
        return _encoder_of(type(request))(request)
    raise TypeError(f"a request must be bytes or a message, got {type(request).__name__}")


def translate_channel_error(
    exc: ChannelError, endpoint: str, path: str, timeout: float | None = None
) -> PingThingsError:
    """The client exception for a transport exception raised during the call to ``path``.

    Parameters
    ----------
    exc
        What the channel raised.
    endpoint
        ``host:port`` of the server.
    path
        The RPC path, ``/v5api.BTrDB/Info``.
    timeout
        The call's timeout, named when the call ran out of time.
    """
    if isinstance(exc, GrpcStatusError):
        if exc.status == GrpcStatus.DEADLINE_EXCEEDED and timeout is not None:
            return _deadline_error(path, endpoint, timeout, exc.message)
        return error_from_grpc_status(exc.status, exc.message, endpoint, path)
    return ConnectionError(f"connection to {endpoint} failed during {path}: {exc.message}")


def _deadline_error(path: str, endpoint: str, timeout: float, detail: str = "") -> DeadlineExceededError:
    text = f"{path} on {endpoint} did not finish within its {format_seconds(timeout)} timeout"
    if detail.startswith("no reply message"):
        text = f"{path} on {endpoint} received no message for {format_seconds(timeout)} (its timeout)"
    elif "server" in detail:
        text += " (the server gave up first)"
    return DeadlineExceededError(text, int(GrpcStatus.DEADLINE_EXCEEDED))


def _is_transient(exc: ChannelError) -> bool:
    """True for failures after which the same call may succeed: connection loss or refusal, GOAWAY,
    UNAVAILABLE. A server that stopped answering keepalive pings is not retried."""
    if isinstance(exc, PeerUnresponsiveError):
        return False
    if isinstance(exc, TransportError):
        return exc.message != "channel closed"
    return isinstance(exc, GrpcStatusError) and exc.status == GrpcStatus.UNAVAILABLE


async def _admit(target: CallTarget, borrower: object, deadline: float, timeout: float, path: str) -> None:
    """Take a limiter token for ``borrower``, waiting at most until ``deadline``.

    Raises
    ------
    ClientClosedError
        The client is closed.
    OverloadedError
        ``max_waiting`` calls already wait for a token.
    DeadlineExceededError
        No token came free before the deadline.
    """
    if target.closed:
        raise ClientClosedError(f"the client for {target.endpoint} is closed; connect again")
    limiter = target.limiter
    try:
        limiter.acquire_on_behalf_of_nowait(borrower)
        return
    except _would_block():
        pass
    waiting = limiter.statistics().tasks_waiting
    max_waiting = target.call_settings.max_waiting
    if waiting >= max_waiting:
        raise OverloadedError(
            f"{path} on {target.endpoint} refused: {waiting} calls already wait for one of the "
            f"{int(limiter.total_tokens)} call slots (concurrency_limit); the client queues at most "
            f"{max_waiting} (max_waiting)"
        )
    with anyio.CancelScope(deadline=deadline) as scope:
        await limiter.acquire_on_behalf_of(borrower)
    if scope.cancelled_caught:
        raise DeadlineExceededError(
            f"{path} on {target.endpoint} did not start within its {format_seconds(timeout)} timeout: "
            f"all {int(limiter.total_tokens)} call slots (concurrency_limit) stayed busy",
            int(GrpcStatus.DEADLINE_EXCEEDED),
        )


def _would_block() -> tuple[type[Exception], ...]:
    """What a limiter's ``*_nowait`` raises when it would wait: anyio's WouldBlock, and on trio also
    trio's own, which anyio 4.10 (the declared floor) passes through untranslated."""
    trio = sys.modules.get("trio")
    return (anyio.WouldBlock,) if trio is None else (anyio.WouldBlock, trio.WouldBlock)


def _retry_delay(
    target: CallTarget, exc: ChannelError, attempt: int, started: float, deadline: float
) -> float | None:
    """Seconds to wait before trying the call again, or None when it must not be retried."""
    settings = target.call_settings
    if attempt > settings.retries or target.closed or not _is_transient(exc):
        return None
    delay = backoff(attempt)
    ready = anyio.current_time() + delay
    if ready - started > settings.retry_budget or ready >= deadline:
        return None
    return delay


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
    target: CallTarget,
    method: str,
    request: betterproto2.Message | bytes,
    response_type: type[T],
    *,
    service: str = BTRDB_SERVICE,
    idempotent: bool | None = None,
) -> T:
    """Make one unary call and return the decoded response (see :func:`call_unary_payload`)."""
    payload = await call_unary_payload(
        target, method, request, response_type, service=service, idempotent=idempotent
    )
    return decode_checked(payload, response_type)


async def call_unary_payload(
    target: CallTarget,
    method: str,
    request: betterproto2.Message | bytes,
    response_type: type[betterproto2.Message],
    *,
    service: str = BTRDB_SERVICE,
    idempotent: bool | None = None,
) -> bytes:
    """Make one unary call and return the response's payload, for callers that decode it
    themselves (an insert's reply); :func:`decode_checked` decodes any other.

    Parameters
    ----------
    target
        The client to call through.
    method
        The short method name, e.g. ``"Info"``.
    request
        The request message (or its encoded bytes).
    response_type
        The response message class (its ``stat`` is read from a wrong-endpoint reply).
    service
        ``"v5api.BTrDB"`` (default) or ``"pingthings.platform.v1.Platform"``.
    idempotent
        Whether the call may be sent again after a transient failure; None looks the method up in
        :data:`~pingthings.timeseries._call_policy.IDEMPOTENT_METHODS`.

    Raises
    ------
    PingThingsError
        The subclass for the transport failure (the caller raises for the response's ``stat``).
    """
    path = f"/{service}/{method}"
    data = request if isinstance(request, bytes) else _as_bytes(request)
    timeout = current_timeout(target, target.call_settings.timeout)
    channel = target.channel
    clock = channel.backend().current_time  # no per-use backend look-up (see transport.backend)
    started = clock()
    deadline = started + timeout  # inf when there is no limit
    borrower = object()
    await _admit(target, borrower, deadline, timeout, path)
    try:
        attempt = 0
        while True:
            try:
                if timeout == math.inf:
                    payload = await channel.unary(path, data)
                else:
                    remaining = deadline - clock()
                    if remaining <= 0:
                        raise _deadline_error(path, target.endpoint, timeout)
                    payload = await channel.unary(path, data, timeout=remaining)
                break
            except ChannelError as exc:
                attempt += 1
                allowed = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
                delay = _retry_delay(target, exc, attempt, started, deadline) if allowed else None
                if delay is None:
                    raise translate_channel_error(exc, target.endpoint, path, timeout) from exc
                await anyio.sleep(delay)
    finally:
        target.limiter.release_on_behalf_of(borrower)
    if payload[:1] == b"\x0a" and service == BTRDB_SERVICE and is_wrong_endpoint(payload):
        stat = response_type.parse(payload).stat  # type: ignore[attr-defined]
        left = None if timeout == math.inf else max(deadline - anyio.current_time(), 0.001)
        payload = await unary_through_proxies(target, path, data, left, f"[405] {stat.msg}")
    return payload


class StreamCall:
    """A server-streaming call under the client's policy: ``async with`` it, then iterate the payloads.

    The limiter token is held until the block exits. Leaving the block early (break, exception,
    cancellation) cancels the call on the server. Each message must arrive within the per-call timeout;
    an idempotent call that fails before its first message is opened again (see :func:`call_unary`).
    """

    __slots__ = (
        "_attempt",
        "_borrower",
        "_call",
        "_data",
        "_delivered",
        "_idempotent",
        "_path",
        "_started",
        "_target",
        "_timeout",
    )

    def __init__(self, target: CallTarget, path: str, data: bytes, idempotent: bool) -> None:
        self._target = target
        self._path = path
        self._data = data
        self._idempotent = idempotent
        self._call: ServerStreamCall | None = None
        self._borrower: object | None = None
        self._delivered = False
        self._attempt = 0
        self._started = 0.0
        self._timeout = math.inf

    async def __aenter__(self) -> StreamCall:
        target = self._target
        self._timeout = current_timeout(target, target.call_settings.timeout)
        self._started = anyio.current_time()
        borrower = object()
        await _admit(target, borrower, self._started + self._timeout, self._timeout, self._path)
        self._borrower = borrower
        try:
            while True:
                try:
                    await self._open()
                    return self
                except ChannelError as exc:
                    await self._retry_or_raise(exc)
        except BaseException:
            await self._finish()
            raise

    async def _open(self) -> None:
        idle = None if self._timeout == math.inf else self._timeout
        call = self._target.channel.server_stream(self._path, self._data, idle_timeout=idle)
        self._call = call
        await call.__aenter__()

    async def _retry_or_raise(self, exc: ChannelError) -> None:
        """Close the failed attempt; wait and open a new one if allowed, else raise the translated error."""
        target = self._target
        self._attempt += 1
        delay = None
        if self._idempotent and not self._delivered:
            delay = _retry_delay(target, exc, self._attempt, self._started, math.inf)
        if self._call is not None:
            await self._call.aclose()
            self._call = None
        if delay is None:
            raise translate_channel_error(exc, target.endpoint, self._path, self._timeout) from exc
        await anyio.sleep(delay)

    def __aiter__(self) -> StreamCall:
        return self

    async def __anext__(self) -> bytes | memoryview:
        while True:
            call = self._call
            if call is None:
                try:
                    await self._open()
                except ChannelError as exc:
                    await self._retry_or_raise(exc)
                continue
            try:
                message = await call.__anext__()
            except ChannelError as exc:
                await self._retry_or_raise(exc)
                continue
            self._delivered = True
            return message

    async def _finish(self) -> None:
        call, self._call = self._call, None
        try:
            if call is not None:
                await call.aclose()
        finally:
            borrower, self._borrower = self._borrower, None
            if borrower is not None:
                self._target.limiter.release_on_behalf_of(borrower)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._finish()


def call_stream(
    target: CallTarget,
    method: str,
    request: bytes | betterproto2.Message,
    *,
    service: str = BTRDB_SERVICE,
    idempotent: bool | None = None,
) -> AbstractAsyncContextManager[AsyncIterator[bytes | memoryview]]:
    """Open a server-streaming call; ``async with`` it for an async iterator of raw response payloads
    (``bytes`` or ``memoryview``).

    Parameters
    ----------
    target
        The client to call through.
    method
        The short method name, e.g. ``"RawValues"``.
    request
        The request message or its encoded bytes.
    service
        ``"v5api.BTrDB"`` (default) or ``"pingthings.platform.v1.Platform"``.
    idempotent
        As for :func:`call_unary`.

    Examples
    --------
    >>> async with call_stream(client, "RawValues", params) as messages:  # doctest: +SKIP
    ...     async for payload in messages:
    ...         ...
    """
    allowed = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
    path, data = method_path(method, service), _as_bytes(request)
    call = StreamCall(target, path, data, allowed)
    if service != BTRDB_SERVICE:
        return call
    return _owner_checked(call, target, path, data)


@asynccontextmanager
async def _owner_checked(
    call: StreamCall, target: CallTarget, path: str, data: bytes
) -> AsyncIterator[AsyncIterator[bytes | memoryview]]:
    """The replies of a v5 streaming call; a 405 in the first one sends the call again through the
    proxy endpoints (see :mod:`._endpoints`), and a 405 the caller decodes names every endpoint."""
    async with call as messages:
        if target.proxy_endpoints:
            async with stream_with_proxy_fallback(target, path, data, messages) as chosen:
                yield chosen
        else:
            try:
                yield messages
            except WrongEndpointError as exc:
                raise wrong_endpoint_error(target, path, str(exc)) from exc


async def collect_stream(
    target: CallTarget,
    method: str,
    request: betterproto2.Message,
    response_type: type[T],
    *,
    service: str = BTRDB_SERVICE,
) -> list[T]:
    """Run a server-streaming control-plane call to the end and return every decoded message."""
    out: list[T] = []
    async with call_stream(target, method, request, service=service) as messages:
        async for payload in messages:
            out.append(decode_checked(payload, response_type))
    return out
