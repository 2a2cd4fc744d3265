"""An asyncio HTTP/2 peer built on the sans-IO core, for driving the gRPC layer frame by frame."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl

from pingthings.wire.http2 import frames
from pingthings.wire.http2.frames import Frame, FrameReader
from pingthings.wire.http2.hpack import HeaderDecoder, HeaderEncoder

WAIT = 10.0


class RawPeer:
    """One client connection that sends exactly the frames it is told to and reads frames back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.frames = FrameReader(max_frame_size=frames.LARGEST_MAX_FRAME, max_header_block=1 << 20)
        self.decoder = HeaderDecoder()
        self.encoder = HeaderEncoder()

    @classmethod
    async def connect(
        cls,
        port: int,
        settings: dict[int, int] | None = None,
        preface: bool = True,
        rcvbuf: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> RawPeer:
        """Connect (over TLS to "localhost" if ``tls``); ``rcvbuf``, if given, fixes the socket's
        kernel receive buffer (in bytes)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        hostname = "localhost" if tls is not None else None
        reader, writer = await asyncio.open_connection(sock=sock, ssl=tls, server_hostname=hostname)
        peer = cls(reader, writer)
        if preface:
            peer.send(frames.PREFACE + frames.settings_frame(settings or {}))
        return peer

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def request(
        self,
        stream_id: int,
        path: str,
        extra: list[tuple[bytes, bytes]] | None = None,
        method: bytes = b"POST",
        content_type: bytes | None = b"application/grpc",
        te: bool = True,
        end: bool = False,
    ) -> None:
        headers = [
            (b":method", method),
            (b":scheme", b"http"),
            (b":path", path.encode()),
            (b":authority", b"x"),
        ]
        if content_type is not None:
            headers.append((b"content-type", content_type))
        if te:
            headers.append((b"te", b"trailers"))
        block = self.encoder.encode(headers + (extra or []))
        for frame in frames.headers_frames(stream_id, block, end, frames.DEFAULT_MAX_FRAME):
            self.send(frame)

    def message(self, stream_id: int, payload: bytes, end: bool = True) -> None:
        body = b"\x00" + len(payload).to_bytes(4, "big") + payload
        self.send(frames.data_header(stream_id, len(body), end) + body)

    async def next_frame(self) -> Frame | None:
        """The next frame from the server (HEADERS decoded into ``payload`` as a dict); None at EOF."""
        while True:
            frame = self.frames.next_frame()
            if frame is not None:
                if frame.type == frames.HEADERS:
                    decoded = dict(self.decoder.decode(frame.payload))
                    return Frame(frame.type, frame.flags, frame.stream_id, decoded)  # type: ignore[arg-type]
                return frame
            data = await asyncio.wait_for(self.reader.read(1 << 20), WAIT)
            if not data:
                return None
            self.frames.feed(data)

    async def until(self, kind: int, stream_id: int | None = None) -> Frame:
        """Skip frames up to the first of type ``kind`` (on ``stream_id`` if given)."""
        while True:
            frame = await self.next_frame()
            assert frame is not None, f"the connection closed before a frame of type {kind}"
            if frame.type == kind and (stream_id is None or frame.stream_id == stream_id):
                return frame

    async def response(self, stream_id: int) -> tuple[dict[bytes, bytes], bytes, dict[bytes, bytes]]:
        """Headers, DATA bytes and trailers of one stream (trailers-only: headers == trailers)."""
        headers: dict[bytes, bytes] | None = None
        data = bytearray()
        while True:
            frame = await self.next_frame()
            assert frame is not None, "the connection closed mid-response"
            if frame.stream_id != stream_id:
                continue
            if frame.type == frames.RST_STREAM:
                raise AssertionError(f"stream reset with {frames.parse_rst_stream(frame.payload)}")
            if frame.type == frames.DATA:
                data += frame.payload
                self.send(frames.window_update(0, len(frame.payload))) if frame.payload else None
            elif frame.type == frames.HEADERS:
                block: dict[bytes, bytes] = frame.payload  # type: ignore[assignment]
                if frame.flags & frames.END_STREAM:
                    return headers if headers is not None else block, bytes(data), block
                headers = block

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()
