"""A connected pair of real anyio TCP socket streams on 127.0.0.1, for tests of the readers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc


@asynccontextmanager
async def pair() -> AsyncIterator[tuple[anyio.abc.SocketStream, anyio.abc.SocketStream]]:
    """A connected (client, peer) pair of anyio socket streams."""
    accepted: list[anyio.abc.SocketStream] = []
    ready = anyio.Event()
    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:

            async def keep(peer: anyio.abc.SocketStream) -> None:
                accepted.append(peer)
                ready.set()
                await anyio.sleep_forever()

            tg.start_soon(listener.serve, keep)
            client = await anyio.connect_tcp("127.0.0.1", port)
            with anyio.fail_after(10):
                await ready.wait()
            try:
                yield client, accepted[0]
            finally:
                await anyio.aclose_forcefully(client)
                await anyio.aclose_forcefully(accepted[0])
                tg.cancel_scope.cancel()
