"""Calls to the platform extension service, with a clear error when a server does not have it.

Devices, units, retention and version-at-time are not part of BTrDB's v5 protocol: they are the
``pingthings.platform.v1.Platform`` service, served by the pingthings embedded server and by PredictiveGrid
platforms that offer it. A stock BTrDB server answers gRPC UNIMPLEMENTED (``unknown service ...``); this
module turns that into :class:`~pingthings.timeseries.exceptions.NotImplementedByServerError` naming the
capability the user asked for and what offers it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import betterproto2

from pingthings.timeseries._rpc import PLATFORM_SERVICE, call_unary
from pingthings.timeseries.exceptions import NotImplementedByServerError

if TYPE_CHECKING:
    from pingthings.timeseries._rpc import CallTarget

T = TypeVar("T", bound=betterproto2.Message)

_GRPC_UNIMPLEMENTED = 12

#: The capability each platform method belongs to, as named in errors.
CAPABILITY_OF_METHOD: dict[str, str] = {
    **{m: "devices" for m in ("CreateDevice", "GetDevice", "ListDevices", "UpdateDevice", "DeleteDevice")},
    **{m: "units" for m in ("CreateUnit", "GetUnit", "ListUnits", "UpdateUnit", "DeleteUnit")},
    **{m: "retention" for m in ("GetCollectionProperties", "SetCollectionRetention")},
    **{m: "retention" for m in ("GetStreamRetention", "SetStreamRetention")},
    "VersionAtTime": "version_at_time",
}


def missing_capability_error(
    client: CallTarget, method: str, error: NotImplementedByServerError
) -> NotImplementedByServerError:
    """The error for a platform ``method`` that the server at ``client.endpoint`` does not implement."""
    capability = CAPABILITY_OF_METHOD.get(method, method)
    return NotImplementedByServerError(
        _GRPC_UNIMPLEMENTED if error.code is None else error.code,
        f"the server at {client.endpoint} does not offer {capability} ({method} is part of the "
        f"{PLATFORM_SERVICE} service, offered by the pingthings embedded server and by PredictiveGrid "
        f"platforms that enable it, not by stock BTrDB servers); the server said: {error.message}",
    )


async def call_platform(
    client: CallTarget, method: str, request: betterproto2.Message | bytes, response_type: type[T]
) -> T:
    """One unary call to the platform service (see :func:`~pingthings.timeseries._rpc.call_unary`).

    Raises
    ------
    NotImplementedByServerError
        The server has no platform service, or not this method; the message names the capability
        (devices, units, retention, version_at_time) and what offers it.
    """
    try:
        return await call_unary(client, method, request, response_type, service=PLATFORM_SERVICE)
    except NotImplementedByServerError as exc:
        if exc.code != _GRPC_UNIMPLEMENTED:
            raise  # the service exists and reported a v5 501 for this request: its own words are best
        raise missing_capability_error(client, method, exc) from exc
