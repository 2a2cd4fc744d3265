"""A grpcio server speaking v5api.BTrDB whose methods do what a test scripts: hang, fail, answer.

It stands in for a real server that stalls or fails transiently (which our embedded server does not do on
request). Info always answers (version 5.0, so the client uses the protobuf RPCs); every other method takes
its next step from a per-method script, and repeats the last step once the script is used up:

* ``"hang"``: never answer; wait until the client cancels (unary) or after sending the scripted messages
  (streams);
* ``"unavailable"``: fail with gRPC UNAVAILABLE;
* ``Reply(payloads, gap)``: send each payload (one for a unary call), ``gap`` seconds apart, then end OK;
  ``Reply(payloads, hang=True)`` sends them and then hangs.

Platform's RawBlocks is served only once a test scripts it (else gRPC UNIMPLEMENTED, as from a stock
server). The server records every attempt: the method, the ``grpc-timeout`` the client sent (as
seconds left when the handler started) and whether the call was cancelled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc

from pingthings._proto import v5api

INFO = bytes(v5api.InfoResponse(major_version=5, minor_version=0, build="scripted"))


@dataclass(frozen=True)
class Reply:
    """Answer with these payloads, ``gap`` seconds apart; then end OK, or hang if ``hang``."""

    payloads: Sequence[bytes]
    gap: float = 0.0
    hang: bool = False


Step = str | Reply


@dataclass
class Attempt:
    """One call the server received."""

    method: str
    time_remaining: float | None
    cancelled: threading.Event = field(default_factory=threading.Event)


UNARY = {"StreamInfo", "Insert", "Delete", "Flush", "Obliterate", "Create", "SetStreamTags"}
STREAMING = {"RawValues", "AlignedWindows", "Windows", "LookupStreams", "ListCollections", "SQLQuery"}


class ScriptedServer:
    """The server; use as a context manager. ``endpoint`` is ``127.0.0.1:<port>``."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[Step]] = {}
        self.attempts: list[Attempt] = []
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
        self._server.add_generic_rpc_handlers((_Handler(self),))
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"127.0.0.1:{self.port}"

    def script(self, method: str, *steps: Step) -> None:
        """What ``method`` does on its next calls (the last step repeats)."""
        with self._lock:
            self.scripts[method] = list(steps)

    def calls(self, method: str) -> list[Attempt]:
        """The attempts of ``method`` so far."""
        with self._lock:
            return [a for a in self.attempts if a.method == method]

    def _begin(self, method: str, context: grpc.ServicerContext) -> tuple[Step, Attempt]:
        remaining = context.time_remaining()  # grpcio reports a huge number when no grpc-timeout came
        attempt = Attempt(method, remaining if remaining is not None and remaining < 1e6 else None)
        context.add_callback(attempt.cancelled.set)
        with self._lock:
            self.attempts.append(attempt)
            steps = self.scripts.get(method) or ["hang"]
            step = steps.pop(0) if len(steps) > 1 else steps[0]
        return step, attempt

    def unary(self, method: str, context: grpc.ServicerContext) -> bytes:
        step, _ = self._begin(method, context)
        if step == "unavailable":
            context.abort(grpc.StatusCode.UNAVAILABLE, "scripted: try again")
        if isinstance(step, Reply):
            return step.payloads[0]
        _wait_until_cancelled(context)
        return b""

    def stream(self, method: str, context: grpc.ServicerContext) -> Iterator[bytes]:
        step, _ = self._begin(method, context)
        if step == "unavailable":
            context.abort(grpc.StatusCode.UNAVAILABLE, "scripted: try again")
        if isinstance(step, Reply):
            for index, payload in enumerate(step.payloads):
                if index and step.gap:
                    time.sleep(step.gap)
                yield payload
            if not step.hang:
                return
        _wait_until_cancelled(context)

    def __enter__(self) -> ScriptedServer:
        self._server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.stop(0).wait(10)


def _wait_until_cancelled(context: grpc.ServicerContext) -> None:
    done = threading.Event()
    context.add_callback(done.set)
    done.wait(60)  # the client always gives up long before


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, server: ScriptedServer) -> None:
        self._server = server

    def service(self, handler_call_details: Any) -> grpc.RpcMethodHandler | None:
        path = handler_call_details.method
        name = path.rsplit("/", 1)[-1]
        if path == "/v5api.BTrDB/Info":
            return grpc.unary_unary_rpc_method_handler(lambda request, context: INFO)
        if name in UNARY:
            return grpc.unary_unary_rpc_method_handler(lambda _, context: self._server.unary(name, context))
        if name in STREAMING or (name == "RawBlocks" and name in self._server.scripts):
            return grpc.unary_stream_rpc_method_handler(lambda _, context: self._server.stream(name, context))
        return None
