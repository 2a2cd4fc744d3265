"""A tiny grpcio client for server tests: raw bytes in, raw bytes out, no message classes.

Calls are synchronous (grpcio), so tests using it run the same under any event loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import betterproto2
import grpc

from pingthings._proto import v5api

PREFIX = "/v5api.BTrDB/"


class RawClient:
    """Send pre-encoded requests to ``/v5api.BTrDB/<Method>`` and return the reply payloads."""

    def __init__(
        self,
        endpoint: str,
        api_key: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        authority: str | None = None,
    ) -> None:
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", -1),
            ("grpc.max_send_message_length", -1),
        ]
        if authority:
            options.append(("grpc.ssl_target_name_override", authority))
        if credentials is None:
            self.channel = grpc.insecure_channel(endpoint, options=options)
        else:
            self.channel = grpc.secure_channel(endpoint, credentials, options=options)
        self.metadata = [("authorization", f"Bearer {api_key}")] if api_key else None

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def unary(self, method: str, request: bytes | betterproto2.Message, timeout: float = 30) -> bytes:
        """One unary call; returns the reply payload."""
        call = self.channel.unary_unary(PREFIX + method)
        return call(bytes(request), metadata=self.metadata, timeout=timeout)

    def stream(self, method: str, request: bytes | betterproto2.Message, timeout: float = 60) -> list[bytes]:
        """One server-streaming call; returns every reply payload."""
        call = self.channel.unary_stream(PREFIX + method)
        return list(call(bytes(request), metadata=self.metadata, timeout=timeout))

    def bidi(self, method: str, requests: Iterable[bytes], timeout: float = 60) -> Iterator[bytes]:
        """A bidirectional call; returns the iterator of reply payloads (cancel it to stop)."""
        call = self.channel.stream_stream(PREFIX + method)
        return call(iter(requests), metadata=self.metadata, timeout=timeout)

    def info(self) -> v5api.InfoResponse:
        """Call Info (handy to check the server still answers)."""
        return v5api.InfoResponse.parse(self.unary("Info", v5api.InfoParams()))


def stat_code(payload: bytes) -> int:
    """The ``stat.code`` of any v5 reply (every reply has ``Status stat = 1``; parsed as a
    message with only that field), 0 if unset."""
    stat = v5api.CreateResponse.parse(payload).stat
    return 0 if stat is None else int(stat.code)


def stat_of(payload: bytes) -> v5api.Status | None:
    """The ``stat`` of any v5 reply, or None if unset."""
    return v5api.CreateResponse.parse(payload).stat
