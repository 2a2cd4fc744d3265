"""A scripted HTTP/2 gRPC server on anyio + h2, for protocol situations real servers do not produce on demand.

Each accepted connection follows :class:`Script`: it may announce a stream limit, refuse the first stream with
RST_STREAM(REFUSED_STREAM), say GOAWAY before processing anything, mark one reply as compressed (gzip
when ``reply_encoding`` names it, else only the flag, with whatever ``grpc-encoding`` header the script
gives, or none), or hold its SETTINGS ACK back to send it in the same write as the first reply; the test
may PING the client with :meth:`Script.ping_client`.
Otherwise every stream gets a gRPC reply ``b"echo:" + request`` with grpc-status 0 once the request stream
ends.
"""

from __future__ import annotations

import dataclasses
import gzip

import anyio
import anyio.abc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes

from pingthings.timeseries.transport.framing import MessageReader, frame_message
from pingthings.wire.http2 import frames
from pingthings.wire.http2.hpack import HeaderEncoder


@dataclasses.dataclass
class Script:
    """What the fake server does; counters tell the test what happened."""

    goaway_on_first_connection: bool = False
    refuse_first_stream: bool = False
    max_concurrent_streams: int | None = None
    compress_request_named: bytes | None = None  # reply to this request with the "compressed" flag set
    hold_output_until_reply: bool = False  # send the SETTINGS ACK in the same write as the first reply
    hold_settings_until_streams: int = 0  # send nothing, SETTINGS included, until this many streams opened
    too_many_streams: bool = False  # set when the client opened more streams than the server allows
    reply_encoding: bytes | None = None  # the grpc-encoding header of every reply, if any
    # On the first connection, once this many requests have arrived: GOAWAY(last = 2^31-1), the reply to the
    # first request and a PING; once the client has answered the PING (so it read all that),
    # GOAWAY(last = the first request's stream): the later requests are never processed.
    two_step_goaway_after: int = 0
    request_headers: list[dict[bytes, bytes]] = dataclasses.field(default_factory=list)  # as received
    ping_acks: int = 0
    changed: anyio.Event = dataclasses.field(default_factory=anyio.Event)
    latest: tuple[h2.connection.H2Connection, anyio.abc.ByteStream, anyio.Lock] | None = None

    async def ping_client(self) -> None:
        """PING the client on the latest connection."""
        assert self.latest is not None
        conn, stream, send_lock = self.latest
        async with send_lock:
            conn.ping(b"srv-ping")
            await stream.send(conn.data_to_send())

    def note(self) -> None:
        """Wake a test waiting for the counters to change."""
        self.changed.set()
        self.changed = anyio.Event()

    connections: int = 0
    streams_answered: int = 0
    streams_refused: int = 0
    most_open_streams: int = 0


async def serve_connection(stream: anyio.abc.ByteStream, script: Script) -> None:
    """Run one connection according to ``script`` until the client goes away."""
    script.connections += 1
    number = script.connections
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
    send_lock = anyio.Lock()
    script.latest = (conn, stream, send_lock)

    async def send_pending() -> None:
        async with send_lock:
            await stream.send(conn.data_to_send())

    conn.initiate_connection()
    if script.max_concurrent_streams is not None:
        conn.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: script.max_concurrent_streams})
    holding = script.hold_settings_until_streams > 0
    if not holding:
        await send_pending()
    readers: dict[int, MessageReader] = {}
    deferred: list[int] = []
    requests: dict[int, list[bytes]] = {}
    open_streams: set[int] = set()

    def answer(sid: int) -> None:
        """Queue the reply to the finished request on ``sid``."""
        head = [(b":status", b"200"), (b"content-type", b"application/grpc")]
        if script.reply_encoding is not None:
            head.append((b"grpc-encoding", script.reply_encoding))
        conn.send_headers(sid, head)
        for message in requests.pop(sid):
            framed = frame_message(b"echo:" + message)
            if message == script.compress_request_named:
                if script.reply_encoding == b"gzip":
                    framed = frame_message(gzip.compress(b"echo:" + message), compressed=True)
                else:
                    framed = b"\x01" + framed[1:]
            conn.send_data(sid, framed)
        conn.send_headers(sid, [(b"grpc-status", b"0")], end_stream=True)
        readers.pop(sid)
        open_streams.discard(sid)
        script.streams_answered += 1

    async with stream:
        while True:
            try:
                data = await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return
            replied = False
            try:
                events = conn.receive_data(data)
            except h2.exceptions.TooManyStreamsError:
                script.too_many_streams = True
                script.note()
                return
            for event in events:
                if isinstance(event, h2.events.RequestReceived):
                    sid = event.stream_id
                    if script.goaway_on_first_connection and number == 1:
                        conn.close_connection(ErrorCodes.NO_ERROR, last_stream_id=0)
                        await send_pending()
                        return
                    if script.refuse_first_stream and script.streams_refused == 0:
                        script.streams_refused += 1
                        conn.reset_stream(sid, ErrorCodes.REFUSED_STREAM)
                        continue
                    readers[sid], requests[sid] = MessageReader(1 << 24), []
                    headers = {bytes(k): bytes(v) for k, v in event.headers}
                    script.request_headers.append(headers)
                    readers[sid].set_encoding(headers.get(b"grpc-encoding"))
                    open_streams.add(sid)
                    script.most_open_streams = max(script.most_open_streams, len(open_streams))
                elif isinstance(event, h2.events.DataReceived) and event.stream_id in readers:
                    requests[event.stream_id].extend(
                        bytes(m) for m in readers[event.stream_id].feed(event.data)
                    )
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id in readers:
                    if script.two_step_goaway_after and number == 1:
                        deferred.append(event.stream_id)
                        if len(deferred) == script.two_step_goaway_after:
                            await send_pending()
                            await stream.send(_two_step_goaway(deferred[0], requests[deferred[0]]))
                            script.streams_answered += 1
                        continue
                    if holding:  # answered once SETTINGS go out: the stream stays open until then
                        deferred.append(event.stream_id)
                        continue
                    answer(event.stream_id)
                    replied = True
                elif isinstance(event, h2.events.PingAckReceived):
                    if event.ping_data == b"goaway-1":
                        await stream.send(frames.goaway(deferred[0], 0))
                        continue
                    script.ping_acks += 1
                    script.note()
            if holding:
                holding = len(script.request_headers) < script.hold_settings_until_streams
                if not holding:
                    for sid in deferred:
                        answer(sid)
            if not holding and (replied or not script.hold_output_until_reply):
                await send_pending()


def _two_step_goaway(first: int, messages: list[bytes]) -> bytes:
    """A graceful shutdown as grpc-go does it, built by hand (h2 sends nothing after its own GOAWAY)."""
    encoder = HeaderEncoder()
    head = encoder.encode([(b":status", b"200"), (b"content-type", b"application/grpc")])
    body = b"".join(frame_message(b"echo:" + m) for m in messages)
    return b"".join(
        [
            frames.goaway(2**31 - 1, 0),
            *frames.headers_frames(first, head, False, 16384),
            frames.data_header(first, len(body), False) + body,
            *frames.headers_frames(first, encoder.encode([(b"grpc-status", b"0")]), True, 16384),
            frames.ping(b"goaway-1", False),
        ]
    )


async def start(task_group: anyio.abc.TaskGroup, script: Script) -> int:
    """Listen on 127.0.0.1 (a free port) inside ``task_group``; return the port."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def handle(stream: anyio.abc.SocketStream) -> None:
        await serve_connection(stream, script)

    async def run() -> None:
        async with listener:
            await listener.serve(handle)

    task_group.start_soon(run)
    return port
