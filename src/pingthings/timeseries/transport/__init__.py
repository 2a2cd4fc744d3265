"""anyio-native gRPC client channel on our own HTTP/2 client state, for asyncio and trio alike.

>>> ch = Channel("localhost", 4410, metadata=(("authorization", "Bearer key"),))
>>> reply = await ch.unary("/v5api.BTrDB/Info", request_bytes, timeout=5)        # doctest: +SKIP
>>> async with ch.server_stream("/v5api.BTrDB/RawValues", request_bytes) as messages:  # doctest: +SKIP
...     async for message in messages: ...
>>> await ch.aclose()                                                                # doctest: +SKIP
"""

from .calls import BidiCall, ServerStreamCall
from .channel import Channel
from .errors import ChannelError, GrpcStatus, GrpcStatusError, TransportError, status_name
from .metadata import USER_AGENT
from .tls import CA_BUNDLE_ENV, client_ssl_context

__all__ = [
    "CA_BUNDLE_ENV",
    "USER_AGENT",
    "BidiCall",
    "Channel",
    "ChannelError",
    "GrpcStatus",
    "GrpcStatusError",
    "ServerStreamCall",
    "TransportError",
    "client_ssl_context",
    "status_name",
]
