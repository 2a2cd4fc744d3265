"""Throughput and latency of the transport channel against a grpclib server in another process.

The server streams pre-built messages of ``--message-bytes`` (default 100 kB, i.e. 5,000 RawPoints of
20 bytes) through a pass-through codec, so the figure measures the client transport alone: HTTP/2 framing,
flow control and gRPC message reassembly (no decoding). Points per second assume 20 bytes per point, the
size of a RawPoint on the wire, to compare with the prototype's 18 M points/s (stack-feasibility.md §5).

    python bench/transport.py                      # 1 M points, both backends, 1 MiB and 16 KiB frames
    python bench/transport.py --points 200000 --repeat 1 --unary 200    # a quick check

Wall time on a shared machine is noisy; CPU time (``time.process_time``) of the client is printed next to
it. The client runs on one core at 100 % when it is the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import anyio

SERVICE = "/bench.Transport"
BYTES_PER_POINT = 20


# ---------------------------------------------------------------------- server (child process)


def serve(port_file: str, cert_dir: str | None) -> None:
    """Run a grpclib server with a raw-bytes Stream and Unary method; write its port to ``port_file``.

    With ``cert_dir`` (holding ``chain.pem`` and ``key.pem``) it serves TLS with ALPN h2.
    """
    import grpclib.const
    import grpclib.encoding.base
    import grpclib.server

    class RawCodec(grpclib.encoding.base.CodecBase):
        __content_subtype__ = "proto"

        def encode(self, message: Any, message_type: Any) -> bytes:
            return message

        def decode(self, data: bytes, message_type: Any) -> Any:
            return data

    class Bench:
        async def stream(self, stream: grpclib.server.Stream) -> None:
            request = await stream.recv_message()
            count, size = (int(x) for x in request.split(b","))
            chunk = bytes(range(256)) * (size // 256) + bytes(size % 256)
            for _ in range(count):
                await stream.send_message(chunk)

        async def unary(self, stream: grpclib.server.Stream) -> None:
            await stream.send_message(await stream.recv_message())

        def __mapping__(self) -> dict[str, grpclib.const.Handler]:
            card = grpclib.const.Cardinality
            return {
                f"{SERVICE}/Stream": grpclib.const.Handler(self.stream, card.UNARY_STREAM, bytes, bytes),
                f"{SERVICE}/Unary": grpclib.const.Handler(self.unary, card.UNARY_UNARY, bytes, bytes),
            }

    async def main() -> None:
        server = grpclib.server.Server([Bench()], codec=RawCodec())
        context = None
        if cert_dir is not None:
            import ssl

            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(os.path.join(cert_dir, "chain.pem"), os.path.join(cert_dir, "key.pem"))
            context.set_alpn_protocols(["h2"])
        await server.start("127.0.0.1", 0, ssl=context)
        port = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        with open(port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.replace(port_file + ".tmp", port_file)
        await asyncio.Event().wait()

    asyncio.run(main())


# ---------------------------------------------------------------------- client


def _ssl_context(ca_file: str | None) -> Any:
    from pingthings.timeseries.transport import client_ssl_context

    return client_ssl_context(ca_file) if ca_file else None


async def stream_once(
    port: int, points: int, message_bytes: int, frame_size: int, streams: int, ca_file: str | None
) -> tuple:
    from pingthings.timeseries.transport import Channel

    per_message = message_bytes // BYTES_PER_POINT
    count = max(1, points // per_message // streams)
    received = 0
    context = _ssl_context(ca_file)
    async with Channel("127.0.0.1", port, max_frame_size=frame_size, ssl_context=context) as ch:
        await ch.unary(f"{SERVICE}/Unary", b"warm-up")

        async def one() -> None:
            nonlocal received
            request = f"{count},{message_bytes}".encode()
            async with ch.server_stream(f"{SERVICE}/Stream", request) as messages:
                async for message in messages:
                    received += len(message)

        wall0, cpu0 = time.perf_counter(), time.process_time()
        async with anyio.create_task_group() as tg:
            for _ in range(streams):
                tg.start_soon(one)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    expected = count * streams * message_bytes
    if received != expected:
        raise SystemExit(f"received {received} bytes, expected {expected}")
    return received / BYTES_PER_POINT, wall, cpu


async def unary_latency(port: int, calls: int, ca_file: str | None) -> tuple[float, float]:
    from pingthings.timeseries.transport import Channel

    async with Channel("127.0.0.1", port, ssl_context=_ssl_context(ca_file)) as ch:
        for _ in range(min(100, calls)):
            await ch.unary(f"{SERVICE}/Unary", b"x" * 32)
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(calls):
            await ch.unary(f"{SERVICE}/Unary", b"x" * 32)
        return (time.perf_counter() - start) / calls, (time.process_time() - cpu_start) / calls


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of another process (Linux /proc), or NaN elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--message-bytes", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--streams", type=int, default=1, help="concurrent streams sharing the points")
    parser.add_argument("--backend", choices=["asyncio", "trio", "both"], default="both")
    parser.add_argument("--frame-size", type=int, action="append", help="default: 1 MiB and 16 KiB")
    parser.add_argument("--unary", type=int, default=2000, help="sequential unary calls to time (0: skip)")
    parser.add_argument("--tls", action="store_true", help="TLS with a throwaway CA (needs trustme)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--cert-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.cert_dir)
        return

    import tempfile

    folder = tempfile.mkdtemp(prefix="bench-transport-")
    port_file = os.path.join(folder, "port")
    command = [sys.executable, __file__, "--serve", port_file]
    ca_file = None
    if args.tls:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        cert.private_key_pem.write_to_path(os.path.join(folder, "key.pem"))
        cert.cert_chain_pems[0].write_to_path(os.path.join(folder, "chain.pem"))
        for blob in cert.cert_chain_pems[1:]:
            blob.write_to_path(os.path.join(folder, "chain.pem"), append=True)
        ca_file = os.path.join(folder, "ca.pem")
        ca.cert_pem.write_to_path(ca_file)
        command += ["--cert-dir", folder]
    server = subprocess.Popen(command)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(port_file):
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("bench server did not start")
            time.sleep(0.05)
        with open(port_file) as f:
            port = int(f.read())
        backends = ["asyncio", "trio"] if args.backend == "both" else [args.backend]
        frames = args.frame_size or [1 << 20, 16_384]
        tls = "TLS" if args.tls else "plain TCP"
        print(f"server: grpclib in a separate process, {tls}; messages of {args.message_bytes} B; 20 B/point")
        print("(shared machine: wall times are noisy; cpu = process CPU time / wall, client and server)")
        for backend in backends:
            for frame in frames:
                rates, cpus, server_cpus = [], [], []
                for _ in range(args.repeat):
                    server_cpu0 = process_cpu_seconds(server.pid)
                    points, wall, cpu = anyio.run(
                        stream_once,
                        port,
                        args.points,
                        args.message_bytes,
                        frame,
                        args.streams,
                        ca_file,
                        backend=backend,
                    )
                    rates.append(points / wall / 1e6)
                    cpus.append(cpu / wall)
                    server_cpus.append((process_cpu_seconds(server.pid) - server_cpu0) / wall)
                print(
                    f"{backend:7s} frame {frame:>8d} B  {args.streams} stream(s) {points / 1e6:.2f} M pts: "
                    f"median {statistics.median(rates):6.2f} M pts/s"
                    f"  (min {min(rates):.2f}, max {max(rates):.2f})"
                    f"  cpu: client {statistics.median(cpus):.2f},"
                    f" server {statistics.median(server_cpus):.2f}"
                )
            if args.unary:
                latency, cpu = anyio.run(unary_latency, port, args.unary, ca_file, backend=backend)
                print(
                    f"{backend:7s} unary: {latency * 1e6:7.0f} µs per call, client CPU {cpu * 1e6:.0f} µs"
                    f" ({args.unary} sequential calls)"
                )
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
