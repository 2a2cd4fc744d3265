"""The method table: which handler serves each ``/package.Service/Method`` path.

A handler is ``async def handler(call) -> None``; it reads the request and sends replies through
the :class:`~.call.Call`, and the protocol ends the call with trailers when it returns (unless
it already did). Services contribute their entries through a ``grpc_methods()`` method.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pingthings.server.grpc.call import Call

Handler = Callable[[Call], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Method:
    """One RPC: its handler, whether it replies with one message (unary) or a stream, and whether
    its handler may start eagerly.

    An eager handler runs its first step inside the connection's ``data_received``, with no task
    (see :mod:`.eager`): only a task is made if it has to wait. Its code up to its first real
    suspension must therefore not need a current task (nothing of anyio's before its first await,
    unless :func:`~.eager.needs_task` is awaited first, as ``blocking`` does).
    """

    handler: Handler
    unary: bool
    eager: bool = False


class Servable(Protocol):
    """A service: its methods by path."""

    def grpc_methods(self) -> Mapping[str, Method]:
        """Path (``/package.Service/Method``) → :class:`Method`."""
        ...


class MethodTable:
    """Every method of every service the server offers.

    Raises
    ------
    ValueError
        When two services claim the same path.
    """

    def __init__(self, services: Iterable[Servable]) -> None:
        self._methods: dict[str, Method] = {}
        for service in services:
            for path, method in service.grpc_methods().items():
                if path in self._methods:
                    raise ValueError(f"two services serve {path}")
                self._methods[path] = method

    def get(self, path: str) -> Method | None:
        """The method at ``path``, or None."""
        return self._methods.get(path)

    def __len__(self) -> int:
        return len(self._methods)

    def paths(self) -> list[str]:
        """Every path served, sorted."""
        return sorted(self._methods)


class CallPolicy(Protocol):
    """What the server asks around every call (authentication, accounting, per-call context)."""

    def admit(self, call: Call) -> None:
        """Refuse the call by raising :class:`~.status.GrpcError`; may set ``call.admin``."""
        ...

    def started(self, call: Call) -> None:
        """The call was admitted and its task created."""
        ...

    def finished(self, call: Call) -> None:
        """The call's task is done (always called once after :meth:`started`)."""
        ...

    async def run(self, call: Call, handler: Handler) -> None:
        """Run ``handler(call)`` in the call's context."""
        ...


class ServerSide(Protocol):
    """What a connection needs from its server (implemented by :class:`~.shutdown.GrpcServer`)."""

    loop: asyncio.AbstractEventLoop
    methods: MethodTable
    policy: CallPolicy
    max_message_bytes: int
    compress_replies: bool

    def track(self, conn: Any) -> None:
        """A connection was made."""
        ...

    def forget(self, conn: Any) -> None:
        """A connection was lost."""
        ...
