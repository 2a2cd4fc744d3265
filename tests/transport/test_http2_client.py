"""The client's HTTP/2 state (sans-IO) against h2 playing the server: streams, windows, settings, errors."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from h2.errors import ErrorCodes

from pingthings.timeseries.transport.errors import TransportError
from pingthings.timeseries.transport.framing import frame_message
from pingthings.timeseries.transport.http2_client import ClientProtocol
from pingthings.timeseries.transport.metadata import encode_timeout_header
from pingthings.wire.http2 import frames as fr
from pingthings.wire.http2.hpack import HeaderDecoder, HeaderEncoder

REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/t.S/M"),
    (b":authority", b"x"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
]
BLOCK = HeaderEncoder().encode(REQUEST)
REPLY = [(":status", "200"), ("content-type", "application/grpc")]


def _pair(
    stream_window: int = 1 << 20, connection_window: int = 1 << 24, server_settings: bool = True
) -> tuple[ClientProtocol, h2.connection.H2Connection]:
    client = ClientProtocol(
        max_frame_size=1 << 20,
        stream_window=stream_window,
        connection_window=connection_window,
        max_message_size=1 << 30,
        endpoint="test:1",
    )
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    if server_settings:
        client.receive(server.data_to_send())
        server.receive_data(client.data_to_send())  # our SETTINGS ACK
    return client, server


def _exchange(client: ClientProtocol, server: h2.connection.H2Connection) -> list[h2.events.Event]:
    """Client bytes to the server, then the server's answer back; return the server's events."""
    events = server.receive_data(client.data_to_send())
    client.receive(server.data_to_send())
    return events


def test_a_unary_exchange_leaves_in_one_buffer_and_comes_back_whole() -> None:
    client, server = _pair()
    state = client.open_stream(BLOCK + encode_timeout_header(5.0), end_stream=False)
    client.send_data(state, frame_message(b"hello"), end_stream=True)
    sent = client.data_to_send()  # HEADERS and DATA together: one socket write
    events = server.receive_data(sent)
    received = next(e for e in events if isinstance(e, h2.events.RequestReceived))
    assert received.headers == [*REQUEST, (b"grpc-timeout", b"5000000u")]
    assert any(isinstance(e, h2.events.StreamEnded) for e in events)
    server.send_headers(1, REPLY)
    server.send_data(1, frame_message(b"world"))
    server.send_headers(1, [("grpc-status", "0")], end_stream=True)
    assert client.receive(server.data_to_send()) == {1}  # only the stream's own waiter needs waking
    assert state.headers == [(b":status", b"200"), (b"content-type", b"application/grpc")]
    assert [bytes(m) for m in state.messages] == [b"world"]
    assert state.trailers == [(b"grpc-status", b"0")]
    assert state.ended and state.closed
    assert client.open_streams == 0


def test_credit_is_given_back_in_batches_so_large_replies_flow() -> None:
    client, server = _pair(stream_window=100_000)
    state = client.open_stream(BLOCK, end_stream=True)
    server.receive_data(client.data_to_send())
    server.send_headers(1, REPLY)
    payload = frame_message(bytes(range(256)) * 2000)  # 512 kB: five times the stream window
    sent = updates = 0
    while sent < len(payload):
        window = min(server.local_flow_control_window(1), server.max_outbound_frame_size)
        assert window > 0, "the client gave no credit back: the reply is stuck"
        server.send_data(1, payload[sent : sent + window])
        sent += window
        client.receive(server.data_to_send())
        state.messages.clear()  # the call consumed what it got
        client.acknowledge(state)
        events = server.receive_data(client.data_to_send())
        updates += sum(isinstance(e, h2.events.WindowUpdated) and e.stream_id == 1 for e in events)
    assert 4 <= updates <= 12  # batched: not one per frame
    assert state.reader.partial is False


def test_small_replies_send_no_window_update_per_call() -> None:
    client, server = _pair()
    for stream_id in (1, 3, 5):
        state = client.open_stream(BLOCK, end_stream=True)
        server.receive_data(client.data_to_send())
        server.send_headers(stream_id, REPLY)
        server.send_data(stream_id, frame_message(b"x" * 100))
        server.send_headers(stream_id, [("grpc-status", "0")], end_stream=True)
        client.receive(server.data_to_send())
        client.forget(state)
        assert client.data_to_send() == b""


def test_streams_continue_after_goaway() -> None:
    client, server = _pair()
    state = client.open_stream(BLOCK, end_stream=True)
    server.receive_data(client.data_to_send())
    server.send_headers(1, REPLY)
    server.close_connection(ErrorCodes.NO_ERROR, last_stream_id=1)
    # h2 refuses to send on a closed connection, so the rest is built by hand.
    tail = server.data_to_send()
    tail += fr.data_header(1, 10, False) + frame_message(b"still")
    tail += fr.headers_frames(1, HeaderEncoder().encode([(b"grpc-status", b"0")]), True, 16384)[0]
    assert client.receive(tail) is None  # GOAWAY wakes everybody
    assert client.goaway == (1, 0, b"")
    assert [bytes(m) for m in state.messages] == [b"still"]
    assert state.ended and state.error is None


def test_padding_counts_against_the_window_and_is_credited() -> None:
    client, server = _pair(stream_window=40_000, connection_window=65_535)
    state = client.open_stream(BLOCK, end_stream=True)
    server.receive_data(client.data_to_send())
    server.send_headers(1, REPLY)
    server.send_data(1, frame_message(b"p" * 30_000), pad_length=200)
    client.receive(server.data_to_send())
    assert state.unacked == 30_005 + 201
    state.messages.clear()
    client.acknowledge(state)
    events = server.receive_data(client.data_to_send())
    credited = {e.stream_id: e.delta for e in events if isinstance(e, h2.events.WindowUpdated)}
    assert credited == {1: 30_206}  # the connection's credit waits for half its window


def test_data_beyond_the_connection_window_is_a_connection_error() -> None:
    client, _server = _pair(stream_window=65_535, connection_window=65_535)
    state = client.open_stream(BLOCK, end_stream=True)
    reply = HeaderEncoder().encode([(b":status", b"200")])
    client.receive(fr.headers_frames(1, reply, False, 16384)[0])
    assert state.headers is not None
    with pytest.raises(fr.ConnectionProtocolError) as info:
        client.receive(fr.data_header(1, 70_000, False) + b"\0" * 70_000)
    assert info.value.code == fr.ErrorCode.FLOW_CONTROL_ERROR
    assert client.data_to_send() == fr.goaway(0, fr.ErrorCode.FLOW_CONTROL_ERROR)


def test_data_before_the_reply_headers_fails_that_stream_only() -> None:
    client, _server = _pair()
    state = client.open_stream(BLOCK, end_stream=True)
    other = client.open_stream(BLOCK, end_stream=True)
    client.data_to_send()
    client.receive(fr.data_header(1, 5, False) + frame_message(b""))
    assert isinstance(state.error, TransportError) and "DATA before the reply headers" in str(state.error)
    assert client.data_to_send() == fr.rst_stream(1, fr.ErrorCode.PROTOCOL_ERROR)
    assert other.error is None and client.open_streams == 1


def test_the_stream_limit_applies_from_the_servers_settings_and_100_before() -> None:
    client, server = _pair(server_settings=False)
    assert not client.settings_known
    for _ in range(100):
        assert client.has_stream_slot(100)
        client.open_stream(BLOCK, end_stream=True)
    assert not client.has_stream_slot(100)
    server.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 200})
    client.receive(server.data_to_send())
    assert client.settings_known and client.max_concurrent_streams == 200
    assert client.has_stream_slot(100)


def test_initial_window_changes_move_every_open_streams_window() -> None:
    client, server = _pair()
    state = client.open_stream(BLOCK, end_stream=False)
    assert state.send_window == 65_535
    server.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    client.receive(server.data_to_send())
    assert state.send_window == 1000
    assert client.window_for(state) == 1000


def test_ping_is_answered_and_push_is_refused() -> None:
    client, server = _pair()
    server.ping(b"12345678")
    client.receive(server.data_to_send())
    events = server.receive_data(client.data_to_send())
    assert any(isinstance(e, h2.events.PingAckReceived) and e.ping_data == b"12345678" for e in events)
    push = fr.frame_header(4 + len(BLOCK), fr.PUSH_PROMISE, fr.END_HEADERS, 1) + b"\0\0\0\2" + BLOCK
    with pytest.raises(fr.ConnectionProtocolError, match="push"):
        client.receive(push)


def test_a_frame_for_a_stream_never_opened_is_a_connection_error() -> None:
    client, _server = _pair()
    with pytest.raises(fr.ConnectionProtocolError, match="never opened"):
        client.receive(fr.rst_stream(7, fr.ErrorCode.CANCEL))


def test_reset_and_forget_stop_counting_the_stream() -> None:
    client, _server = _pair()
    state = client.open_stream(BLOCK, end_stream=False)
    client.data_to_send()
    client.reset_stream(state, fr.ErrorCode.CANCEL)
    client.forget(state)
    assert client.data_to_send() == fr.rst_stream(1, fr.ErrorCode.CANCEL)
    assert client.open_streams == 0 and client.streams == {}
    # What the server still sends for the stream is dropped, and its bytes credited to the connection.
    client.receive(fr.data_header(1, 10, False) + b"\0" * 10)


def test_the_timeout_header_decodes() -> None:
    assert HeaderDecoder().decode(encode_timeout_header(0.25)) == [(b"grpc-timeout", b"250000u")]


def test_a_new_header_table_size_is_acknowledged_in_the_next_block() -> None:
    client, server = _pair()
    server.update_settings({h2.settings.SettingCodes.HEADER_TABLE_SIZE: 0})
    client.receive(server.data_to_send())
    client.open_stream(BLOCK, end_stream=True)
    client.open_stream(BLOCK, end_stream=True)
    sent = client.data_to_send()
    flags = fr.END_HEADERS | fr.END_STREAM
    assert fr.frame_header(len(BLOCK) + 1, fr.HEADERS, flags, 1) + b"\x20" + BLOCK in sent  # size update to 0
    assert sent.count(BLOCK) == 2 and sent.count(b"\x20" + BLOCK) == 1
    events = server.receive_data(sent)
    assert [e.headers for e in events if isinstance(e, h2.events.RequestReceived)] == [REQUEST, REQUEST]


def test_informational_headers_are_skipped_but_may_not_end_the_stream() -> None:
    client, _server = _pair()
    encoder = HeaderEncoder()
    state = client.open_stream(BLOCK, end_stream=True)
    client.receive(fr.headers_frames(1, encoder.encode([(b":status", b"103")]), False, 16384)[0])
    assert state.headers is None and state.error is None
    ending = client.open_stream(BLOCK, end_stream=True)
    client.receive(fr.headers_frames(3, encoder.encode([(b":status", b"100")]), True, 16384)[0])
    assert isinstance(ending.error, TransportError) and "informational" in str(ending.error)
    assert state.error is None
