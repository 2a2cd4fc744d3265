"""The channel behind ``connect(lazy=True)``: asks the server's Info on the first connection.

A lazily connected client is built without talking to the server, so an application can start while
the platform is down. It still needs the server's Info once (its version says whether the Arrow RPCs
exist). :class:`InfoOnFirstConnectChannel` fetches it on the first connection that any call opens,
before that call goes on. Until Info has been answered, reads use the plain v5 RPCs, which every
server offers; the answer switches later calls to the Arrow RPCs when the server has them.

A failed Info is not reported by itself: the call that opened the connection goes on and fails (or
not) on its own, with its own error, and the next connection asks again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pingthings.timeseries.transport import Channel, ChannelError
from pingthings.wire.info_reply import InfoReply, decode_info
from pingthings.wire.protowire import WireFormatError

if TYPE_CHECKING:
    from pingthings.timeseries.transport.connection import Connection

INFO_PATH = "/v5api.BTrDB/Info"

_PENDING, _ASKING, _KNOWN = "pending", "asking", "known"


class InfoOnFirstConnectChannel(Channel):
    """A :class:`~pingthings.timeseries.transport.Channel` that asks Info once it first connects.

    Parameters
    ----------
    *args, **kwargs
        As for :class:`~pingthings.timeseries.transport.Channel`.
    on_info
        Called with the decoded Info response once the server has answered it.
    info_timeout
        Seconds the Info call may take.
    """

    def __init__(
        self,
        *args: object,
        on_info: Callable[[InfoReply], None],
        info_timeout: float,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._on_info = on_info
        self._info_timeout = info_timeout
        self._info_state = _PENDING

    @property
    def info_known(self) -> bool:
        """True once the server has answered Info on this channel."""
        return self._info_state == _KNOWN

    async def connection(self) -> Connection:
        conn = await super().connection()
        if self._info_state != _PENDING:
            # Known, or another call is asking right now: calls never wait for someone else's Info.
            return conn
        self._info_state = _ASKING
        try:
            raw = await self.unary(INFO_PATH, b"", timeout=self._info_timeout)
            response = decode_info(raw)
        except (ChannelError, WireFormatError):
            self._info_state = _PENDING
            return conn
        except BaseException:
            self._info_state = _PENDING
            raise
        if response.stat_code:
            self._info_state = _PENDING
            return conn
        self._info_state = _KNOWN
        self._on_info(response)
        return conn
