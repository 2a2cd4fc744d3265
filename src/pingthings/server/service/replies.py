"""Building the ``stat`` part of v5 responses.

Every v5 response message carries ``Status stat = 1``, so an error reply for any RPC is just
field 1 set and nothing else; it can be encoded without knowing the response type.
"""

from __future__ import annotations

import logging

from pingthings._proto.v5api import Status
from pingthings.server.errors import ServerError
from pingthings.wire.protowire import encode_varint
from pingthings.wire.status import StatusCode

log = logging.getLogger("pingthings.server")


def status_of(exc: BaseException) -> Status:
    """Map an exception raised while serving a call to the v5 ``Status`` reported to the caller.

    A :class:`~pingthings.server.errors.ServerError` keeps its code and message; anything else is
    logged with its traceback and reported as 500 with its message.
    """
    if isinstance(exc, ServerError):
        return Status(code=int(exc.code), msg=exc.msg)
    log.error("unexpected error while serving a call", exc_info=exc)
    return Status(code=int(StatusCode.INVARIANT_FAILURE), msg=f"internal error: {type(exc).__name__}: {exc}")


def error_reply(exc: BaseException) -> bytes:
    """Encode a response whose only field is ``stat`` describing ``exc``."""
    return stat_reply(status_of(exc))


def stat_reply(stat: Status) -> bytes:
    """Encode a response whose only field is ``stat``."""
    body = bytes(stat)
    return b"\x0a" + encode_varint(len(body)) + body
