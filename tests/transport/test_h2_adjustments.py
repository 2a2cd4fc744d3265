"""Our two h2 adjustments: the cheap DATA-frame repr, and streams that continue after a GOAWAY."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import DataFrame

from pingthings.timeseries.transport.frame_buffer import QuietDataFrame, install
from pingthings.timeseries.transport.goaway_drain import allow_draining

_REQUEST = [(":method", "POST"), (":scheme", "http"), (":path", "/a"), (":authority", "x")]


def _pair() -> tuple[h2.connection.H2Connection, h2.connection.H2Connection]:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    return client, server


def test_install_succeeds_on_a_fresh_connection_and_data_still_arrives() -> None:
    client, server = _pair()
    assert install(client)
    client.initiate_connection()
    client.send_headers(1, _REQUEST)
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    server.send_headers(1, [(":status", "200")])
    payload = bytes(range(256)) * 40
    server.send_data(1, payload, end_stream=True)
    events = client.receive_data(server.data_to_send())
    data = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    assert data == payload
    assert any(isinstance(e, h2.events.StreamEnded) for e in events)


def test_quiet_repr_does_not_dump_the_payload() -> None:
    frame = QuietDataFrame(1, data=b"\xab" * (1 << 20))
    text = repr(frame)
    assert "1048576 bytes" in text and "ab" not in text.lower().replace("quietdataframe", "")
    assert len(text) < 200
    assert isinstance(frame, DataFrame)


def test_install_refuses_a_connection_that_already_received_bytes() -> None:
    client, server = _pair()
    client.initiate_connection()
    server.initiate_connection()
    client.incoming_buffer.add_data(server.data_to_send()[:5])
    assert not install(client)


def test_stream_continues_after_goaway_but_no_new_stream_opens() -> None:
    client, server = _pair()
    assert allow_draining(client)
    client.initiate_connection()
    client.send_headers(1, _REQUEST, end_stream=True)
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    allow_draining(server)  # so that the h2 server, too, may finish stream 1 after its GOAWAY
    server.send_headers(1, [(":status", "200")])
    server.close_connection(ErrorCodes.NO_ERROR, last_stream_id=1)
    server.send_data(1, b"still here", end_stream=True)
    events = client.receive_data(server.data_to_send())
    kinds = [type(e) for e in events]
    assert h2.events.ConnectionTerminated in kinds and h2.events.StreamEnded in kinds
    assert b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived)) == b"still here"
    with pytest.raises(h2.exceptions.ProtocolError):
        client.send_headers(3, _REQUEST)


def test_plain_h2_refuses_data_after_goaway() -> None:
    """The reason for allow_draining: without it the same exchange is a protocol error."""
    client, server = _pair()
    client.initiate_connection()
    client.send_headers(1, _REQUEST, end_stream=True)
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    allow_draining(server)
    server.send_headers(1, [(":status", "200")])
    server.close_connection(ErrorCodes.NO_ERROR, last_stream_id=1)
    server.send_data(1, b"too late for plain h2", end_stream=True)
    with pytest.raises(h2.exceptions.ProtocolError):
        client.receive_data(server.data_to_send())
