"""A blocking raw HTTP/2 gRPC caller that can lie: any length prefix, any body, any pacing.

grpcio and grpclib both build the 5-byte gRPC prefix from the real message, so a request whose
prefix claims more than it carries (or much more than the server accepts) needs a client written
at the frame level. This one speaks plaintext HTTP/2 over a socket with h2, obeys the server's
flow control and records what came back: headers, reply bytes, trailers, and whether the server
reset the stream.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events

from pingthings.server.config import parse_listen


@dataclass
class CallResult:
    """What the server sent back on one stream."""

    headers: dict[str, str] = field(default_factory=dict)
    data: bytes = b""
    trailers: dict[str, str] = field(default_factory=dict)
    reset: bool = False
    ended: bool = False
    body_sent: int = 0

    def messages(self) -> list[bytes]:
        """The gRPC messages in :attr:`data` (prefix stripped)."""
        out, pos = [], 0
        while pos + 5 <= len(self.data):
            (size,) = struct.unpack(">I", self.data[pos + 1 : pos + 5])
            out.append(self.data[pos + 5 : pos + 5 + size])
            pos += 5 + size
        return out


class H2Call:
    """One connection, one gRPC call to ``path`` on ``endpoint``."""

    def __init__(self, endpoint: str, path: str, api_key: str | None = None) -> None:
        host, port = parse_listen(endpoint)
        self.sock = socket.create_connection((host, port), timeout=30)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.stream_id = self.conn.get_next_available_stream_id()
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", endpoint),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        if api_key:
            headers.append(("authorization", f"Bearer {api_key}"))
        self.conn.send_headers(self.stream_id, headers)
        self.result = CallResult()
        self._flush()

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def _pump(self, timeout: float) -> bool:
        """Read and handle one batch of frames; False when the connection closed or nothing came."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            return True
        except OSError:
            self.result.ended = True
            return False
        if not data:
            self.result.ended = True
            return False
        for event in self.conn.receive_data(data):
            self._handle(event)
        self._flush()
        return True

    @property
    def _stopped(self) -> bool:
        return self.result.reset or bool(self.result.trailers) or self.result.ended

    def send(
        self, prefix_length: int, body_size: int, end: bool = True, deadline: float = 60.0
    ) -> CallResult:
        """Send a prefix claiming ``prefix_length`` bytes, then ``body_size`` zero bytes.

        Stops sending early when the server answers, resets the stream or closes the
        connection; ``result.body_sent`` says how much body went out.
        """
        payload_chunk = b"\0" * (1 << 16)
        pending = struct.pack(">BI", 0, prefix_length)
        remaining = body_size
        give_up = time.monotonic() + deadline
        while (pending or remaining) and not self._stopped and time.monotonic() < give_up:
            window = min(
                self.conn.local_flow_control_window(self.stream_id), self.conn.max_outbound_frame_size
            )
            if window <= 0:
                if not self._pump(0.5):
                    break
                continue
            if not pending:
                take = min(remaining, len(payload_chunk))
                pending, remaining = payload_chunk[:take], remaining - take
                self.result.body_sent += take
            piece, pending = pending[:window], pending[window:]
            last = end and not pending and not remaining
            self.conn.send_data(self.stream_id, piece, end_stream=last)
            self._flush()
            self.sock.setblocking(False)
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                data = None
            except OSError:
                data = b""
            self.sock.setblocking(True)
            if data is not None:
                if not data:
                    self.result.ended = True
                    break
                for event in self.conn.receive_data(data):
                    self._handle(event)
                self._flush()
        return self.result

    def _handle(self, event: object) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            self.result.headers = {k.decode(): v.decode() for k, v in event.headers}
        elif isinstance(event, h2.events.DataReceived):
            self.result.data += event.data
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            self.result.trailers = {k.decode(): v.decode() for k, v in event.headers}
        elif isinstance(event, h2.events.StreamReset):
            self.result.reset = True
        elif isinstance(event, (h2.events.StreamEnded, h2.events.ConnectionTerminated)):
            self.result.ended = True

    def finish(self, timeout: float = 30.0) -> CallResult:
        """Wait until the server ends or resets the stream (or ``timeout`` passes)."""
        give_up = time.monotonic() + timeout
        while not (self.result.reset or self.result.trailers) and time.monotonic() < give_up:
            if not self._pump(0.2):
                break
        return self.result

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def __enter__(self) -> H2Call:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
