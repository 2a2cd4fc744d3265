"""Let streams the server promised to finish complete after its GOAWAY.

A graceful server shutdown (grpc-go, grpc core, proxies) sends GOAWAY naming the last stream it will still
process, then finishes those streams before closing. h2's connection state machine, however, moves to CLOSED
on the first GOAWAY received and then refuses every later frame, DATA included, with a ProtocolError, so
the calls the server is still completing would fail.

:func:`allow_draining` gives one connection a copy of h2's transition table in which a CLOSED connection
still receives and sends everything an existing stream needs (DATA, HEADERS, WINDOW_UPDATE, RST_STREAM,
PING, SETTINGS). Opening new streams stays forbidden; the channel opens a new connection for those. If h2
changes the internals this relies on, the function does nothing, reports the fallback once
(:func:`pingthings.fastpaths.report_fallback`) and returns False: in-flight calls then fail on GOAWAY, as
with plain h2.
"""

from __future__ import annotations

import h2.connection
from h2.connection import ConnectionInputs, ConnectionState

from pingthings.fastpaths import report_fallback

_STILL_FORBIDDEN = frozenset(
    {ConnectionInputs.SEND_HEADERS, ConnectionInputs.SEND_PUSH_PROMISE, ConnectionInputs.RECV_PUSH_PROMISE}
)


def allow_draining(conn: h2.connection.H2Connection) -> bool:
    """Allow existing streams of ``conn`` to continue after a GOAWAY; return whether it was possible."""
    machine = getattr(conn, "state_machine", None)
    table = getattr(machine, "_transitions", None)
    if machine is None or not isinstance(table, dict):
        report_fallback("goaway-drain", "h2's connection state machine has no _transitions table")
        return False
    closed = ConnectionState.CLOSED
    extended = dict(table)
    for event in ConnectionInputs:
        if event not in _STILL_FORBIDDEN:
            extended.setdefault((closed, event), (None, closed))
    machine._transitions = extended  # an instance attribute: other connections keep h2's table
    return True
