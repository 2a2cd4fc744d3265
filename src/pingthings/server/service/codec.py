"""A grpclib codec that lets point-bearing messages bypass protobuf message classes.

Handlers that declare :class:`RawBytes` as their request or reply type receive the request
payload as ``bytes`` and may send ``bytes`` (or any buffer) as a reply; the numpy codecs in
``pingthings.wire.points`` and the checker in :mod:`.wire_check` do the (de)serialisation.
Every other type is treated as a betterproto2 message.
"""

from __future__ import annotations

from typing import Any

import betterproto2
from grpclib.encoding.base import CodecBase

from pingthings.server.service.arrow_reply import Segments


class RawBytes:
    """Marker type: the payload crosses the codec untouched, as ``bytes``."""


class PassThroughCodec(CodecBase):
    """Codec for the server: raw bytes for :class:`RawBytes`, betterproto2 for the rest."""

    __content_subtype__ = "proto"

    def encode(self, message: Any, message_type: Any) -> bytes:
        """Serialise ``message``: buffers are sent as they are, messages through betterproto2."""
        if isinstance(message, bytes):
            return message
        if isinstance(message, betterproto2.Message):
            return bytes(message)  # whatever the declared type
        if isinstance(message, Segments):
            return message.join()
        # Any other buffer (memoryview, bytearray, pa.Buffer) is passed on as a view, not copied:
        # grpclib prepends the 5-byte gRPC prefix with one concatenation.
        return memoryview(message)  # type: ignore[return-value]

    def decode(self, data: bytes, message_type: Any) -> Any:
        """Return ``data`` itself for :class:`RawBytes`, else parse it as ``message_type``."""
        if message_type is RawBytes:
            return bytes(data)
        return message_type.parse(data)
