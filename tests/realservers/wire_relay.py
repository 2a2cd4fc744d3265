"""A TCP relay on 127.0.0.1 that counts the bytes crossing it, to measure what compression saves.

Clients connect to :attr:`WireRelay.endpoint`; every connection is forwarded to the target and the bytes
each way are counted. Threads copy the data (one per direction and connection), so the relay works
for any client, whatever its event loop. Used by the compression tests and by ``bench/compressed.py``.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class WireRelay:
    """Forward connections to ``target`` (``host:port``) and count the bytes.

    Attributes
    ----------
    to_server, to_client
        Bytes forwarded so far in each direction (all connections).
    """

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self._target = (host.strip("[]"), int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self.to_server = 0
        self.to_client = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._spawn(self._accept_loop)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, upstream]
            self._spawn(self._pump, client, upstream, "to_server")
            self._spawn(self._pump, upstream, client, "to_client")

    def _pump(self, source: socket.socket, sink: socket.socket, counter: str) -> None:
        try:
            while True:
                data = source.recv(1 << 20)
                if not data:
                    break
                sink.sendall(data)
                with self._lock:
                    setattr(self, counter, getattr(self, counter) + len(data))
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def reset(self) -> None:
        """Set both counters back to zero."""
        with self._lock:
            self.to_server = self.to_client = 0

    def close(self) -> None:
        """Stop listening and close every forwarded connection."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> WireRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
