"""Building the ``stat`` part of v5 responses.

Every v5 response message carries ``Status stat = 1``, so an error reply for any RPC is just
field 1 set and nothing else; it can be encoded without knowing the response type.
"""

from __future__ import annotations

import logging
import secrets

from pingthings._proto.v5api import Status
from pingthings.server.errors import DiskFull, ServerError
from pingthings.server.service.context import serving_data_dir
from pingthings.server.service.disk_full import caused_by_full_disk, disk_full_error
from pingthings.wire.protowire import encode_varint
from pingthings.wire.status import StatusCode

log = logging.getLogger("pingthings.server")


def status_of(exc: BaseException) -> Status:
    """Map an exception raised while serving a call to the v5 ``Status`` reported to the caller.

    A :class:`~pingthings.server.errors.ServerError` keeps its code and message; a full disk
    anywhere behind the error becomes :class:`~pingthings.server.errors.DiskFull` (426). Anything
    else is logged with its traceback under a short incident id and reported as 500 with that id
    only: class names, messages and tracebacks stay in the server log.
    """
    if isinstance(exc, ServerError) and not isinstance(exc, DiskFull):
        return Status(code=int(exc.code), msg=exc.msg)
    if isinstance(exc, DiskFull) or caused_by_full_disk(exc):  # the engine's own DiskFull too
        full = disk_full_error(serving_data_dir.get())
        log.error("write refused: %s", full.msg, exc_info=exc)
        return Status(code=int(full.code), msg=full.msg)
    return internal_status(exc)


def internal_status(exc: BaseException, where: str = "a call") -> Status:
    """Log ``exc`` with a fresh incident id and return a 500 status that names only that id."""
    incident = secrets.token_hex(4)
    log.error("unexpected error while serving %s (incident %s)", where, incident, exc_info=exc)
    return Status(
        code=int(StatusCode.INVARIANT_FAILURE),
        msg=f"internal server error (incident {incident}; the server log has the details)",
    )


def error_reply(exc: BaseException) -> bytes:
    """Encode a response whose only field is ``stat`` describing ``exc``."""
    return stat_reply(status_of(exc))


def stat_reply(stat: Status) -> bytes:
    """Encode a response whose only field is ``stat``."""
    body = bytes(stat)
    return b"\x0a" + encode_varint(len(body)) + body
