"""A stand-in for a stock BTrDB server, on grpcio, built from the official client's generated v5api modules.

It behaves as a BTrDB 4.15 server (grpc-go) measured with btrdb-python 5.34 does:

* every reply is gzip-compressed, whatever the client advertised;
* Info answers major 4, minor 15, build "4.15.9" (and the proxy endpoints it is told to list);
* Insert refuses more than 25,000 points with ``[414] Insert too big`` and ignores the merge policy;
* ListCollections needs a start-with value that begins with the prefix and a limit of 1..10000 (the v4
  fields 2 and 3), answers one page and sorts by name;
* annotations are stored as the raw bytes the server was given: Create stores the client's serialized
  ``OptValue``, SetStreamAnnotations stores the bare text, and both come back as bytes in the v5
  ``OptValue`` slot of StreamInfo / LookupStreams (so the bare text is not a valid ``OptValue``);
* there is no ``pingthings.platform.v1.Platform`` service (``unknown service ...``);
* streams listed in ``foreign`` answer ``[405] This is the wrong endpoint for this stream``.

Everything is kept in memory, shared by the servers built on one :class:`Store` (a node and its proxy).
The double records every Insert it receives (size, accepted or not) for the tests to check.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
from btrdb.grpcinterface import btrdb_pb2 as pb

SERVICE = "v5api.BTrDB"
PLATFORM_SERVICE = "pingthings.platform.v1.Platform"
RAW_CHUNK = 5000  # points per RawValues reply message


# ---------------------------------------------------------------------- protobuf wire helpers


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """(number, wire type, value) of every top-level field: ints for varints, bytes otherwise."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
        elif wire == 2:
            size, pos = _read_varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield number, wire, value


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _stat(code: int, msg: str) -> pb.Status:
    return pb.Status(code=code, msg=msg)


# ---------------------------------------------------------------------- state


@dataclass
class StoredStream:
    """One stream of the double: metadata as the v4 server keeps it, and its points."""

    collection: str
    tags: dict[str, str]
    annotations: dict[str, bytes]  # raw bytes, as the v4 server stores them
    times: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    values: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    version: int = 10
    property_version: int = 1


@dataclass
class InsertRecord:
    """One Insert the double received."""

    uuid: bytes
    points: int
    code: int  # 0 when accepted
    first_time: int


class Store:
    """Streams shared by the doubles built on it (a node and its proxy)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.streams: dict[bytes, StoredStream] = {}
        self.inserts: list[InsertRecord] = []


@dataclass
class Behaviour:
    """How a double behaves; the defaults are those of a stock BTrDB 4.15 server."""

    major: int = 4
    minor: int = 15
    build: str = "4.15.9"
    insert_limit: int = 25_000
    v4_list_collections: bool = True
    compression: grpc.Compression | None = grpc.Compression.Gzip
    proxy_endpoints: list[str] = field(default_factory=list)
    foreign: set[bytes] = field(default_factory=set)  # uuids this node does not own (405)
    failing_inserts: set[int] = field(default_factory=set)  # 1-based Insert call numbers answering 500


# ---------------------------------------------------------------------- the servicer


class BTrDBDouble:
    """The v5api.BTrDB handlers, working on raw request bytes."""

    def __init__(self, store: Store, behaviour: Behaviour) -> None:
        self.store = store
        self.behaviour = behaviour

    # -- helpers
    def _stream(self, uuid: bytes) -> tuple[StoredStream | None, pb.Status | None]:
        if uuid in self.behaviour.foreign:
            return None, _stat(405, "This is the wrong endpoint for this stream")
        found = self.store.streams.get(uuid)
        if found is None:
            return None, _stat(404, "stream does not exist")
        return found, None

    def _descriptor(self, uuid: bytes, stream: StoredStream) -> bytes:
        head = pb.StreamDescriptor(
            uuid=uuid,
            collection=stream.collection,
            tags=[pb.KeyOptValue(key=k, val=pb.OptValue(value=v)) for k, v in sorted(stream.tags.items())],
            propertyVersion=stream.property_version,
        ).SerializeToString()
        # v4 annotations are KeyValue{string key = 1; bytes value = 2}: whatever bytes were stored.
        for key, raw in sorted(stream.annotations.items()):
            head += _len_field(4, _len_field(1, key.encode()) + _len_field(2, raw))
        return head

    # -- server
    def info(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        b = self.behaviour
        proxy = pb.ProxyInfo(proxyEndpoints=b.proxy_endpoints) if b.proxy_endpoints else None
        return pb.InfoResponse(
            majorVersion=b.major, minorVersion=b.minor, build=b.build, proxy=proxy
        ).SerializeToString()

    # -- metadata
    def create(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        params = pb.CreateParams.FromString(request)
        with self.store.lock:
            if params.uuid in self.store.streams:
                return pb.CreateResponse(stat=_stat(406, "stream already exists")).SerializeToString()
            annotations = {kv.key: kv.val.SerializeToString() for kv in params.annotations}
            self.store.streams[params.uuid] = StoredStream(
                params.collection, {kv.key: kv.val.value for kv in params.tags}, annotations
            )
        return pb.CreateResponse().SerializeToString()

    def stream_info(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        params = pb.StreamInfoParams.FromString(request)
        with self.store.lock:
            stream, stat = self._stream(params.uuid)
            if stat is not None or stream is None:
                return pb.StreamInfoResponse(stat=stat).SerializeToString()
            head = pb.StreamInfoResponse(versionMajor=stream.version).SerializeToString()
            return head + _len_field(4, self._descriptor(params.uuid, stream))

    def set_stream_annotations(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        params = pb.SetStreamAnnotationsParams.FromString(request)
        with self.store.lock:
            stream, stat = self._stream(params.uuid)
            if stat is not None or stream is None:
                return pb.SetStreamAnnotationsResponse(stat=stat).SerializeToString()
            if params.expectedPropertyVersion != stream.property_version:
                stat = _stat(423, "annotation version does not match")
                return pb.SetStreamAnnotationsResponse(stat=stat).SerializeToString()
            for kv in params.changes:  # removals are ignored, as v4 does
                stream.annotations[kv.key] = kv.val.value.encode()  # the bare text, not an OptValue
            stream.property_version += 1
        return pb.SetStreamAnnotationsResponse().SerializeToString()

    def lookup_streams(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        params = pb.LookupStreamsParams.FromString(request)
        with self.store.lock:
            found = []
            for uuid, stream in sorted(self.store.streams.items()):
                if params.isCollectionPrefix:
                    if not stream.collection.startswith(params.collection):
                        continue
                elif stream.collection != params.collection:
                    continue
                if any(stream.tags.get(kv.key) != kv.val.value for kv in params.tags if kv.HasField("val")):
                    continue
                found.append(_len_field(2, self._descriptor(uuid, stream)))
        yield b"".join(found)

    def list_collections(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        prefix, start_with, limit = "", "", 0
        for number, _, value in _fields(request):
            if number == 1:
                prefix = value.decode()
            elif number == 2:
                start_with = value.decode()
            elif number == 3:
                limit = value
        with self.store.lock:
            names = sorted(
                {s.collection for s in self.store.streams.values() if s.collection.startswith(prefix)}
            )
        if not self.behaviour.v4_list_collections:
            yield pb.ListCollectionsResponse(collections=names).SerializeToString()
            return
        if not start_with.startswith(prefix):
            yield pb.ListCollectionsResponse(
                stat=_stat(421, "starting parameter does not have the prefix")
            ).SerializeToString()
            return
        if not 0 < limit <= 10_000:
            yield pb.ListCollectionsResponse(
                stat=_stat(421, "limit parameter must be 0 < limit <= 10000")
            ).SerializeToString()
            return
        page = [name for name in names if name >= start_with][:limit]
        yield pb.ListCollectionsResponse(collections=page).SerializeToString()

    # -- data
    def insert(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        params = pb.InsertParams.FromString(request)
        times = np.array([p.time for p in params.values], dtype=np.int64)
        values = np.array([p.value for p in params.values], dtype=np.float64)
        with self.store.lock:
            call_number = len(self.store.inserts) + 1
            record = InsertRecord(params.uuid, len(params.values), 0, int(times[0]) if times.size else 0)
            self.store.inserts.append(record)
            stream, stat = self._stream(params.uuid)
            if stat is None and len(params.values) > self.behaviour.insert_limit:
                stat = _stat(414, "Insert too big")
            if stat is None and call_number in self.behaviour.failing_inserts:
                stat = _stat(500, "injected failure")
            if stat is not None or stream is None:
                record.code = stat.code if stat is not None else 404
                return pb.InsertResponse(stat=stat).SerializeToString()
            # v4 ignores the merge policy: duplicates are kept ("never").
            all_times = np.concatenate([stream.times, times])
            order = np.argsort(all_times, kind="stable")
            stream.times = all_times[order]
            stream.values = np.concatenate([stream.values, values])[order]
            stream.version += 1
            return pb.InsertResponse(versionMajor=stream.version).SerializeToString()

    def _read(self, uuid: bytes) -> tuple[StoredStream | None, pb.Status | None, np.ndarray, np.ndarray, int]:
        with self.store.lock:
            stream, stat = self._stream(uuid)
            if stream is None:
                return None, stat, np.empty(0, np.int64), np.empty(0), 0
            return stream, None, stream.times, stream.values, stream.version

    def raw_values(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        params = pb.RawValuesParams.FromString(request)
        _stream, stat, times, values, version = self._read(params.uuid)
        if stat is not None:
            yield pb.RawValuesResponse(stat=stat).SerializeToString()
            return
        lo, hi = np.searchsorted(times, [params.start, params.end])
        if lo == hi:
            yield pb.RawValuesResponse(versionMajor=version).SerializeToString()
        for start in range(int(lo), int(hi), RAW_CHUNK):
            stop = min(start + RAW_CHUNK, int(hi))
            points = [
                pb.RawPoint(time=int(t), value=float(v))
                for t, v in zip(times[start:stop], values[start:stop], strict=True)
            ]
            yield pb.RawValuesResponse(versionMajor=version, values=points).SerializeToString()

    def _stat_windows(self, times: np.ndarray, values: np.ndarray, edges: list[int]) -> list[pb.StatPoint]:
        out = []
        for start, end in itertools.pairwise(edges):
            lo, hi = np.searchsorted(times, [start, end])
            if hi > lo:
                window = values[lo:hi]
                out.append(
                    pb.StatPoint(
                        time=start,
                        min=float(window.min()),
                        mean=float(window.mean()),
                        max=float(window.max()),
                        count=int(hi - lo),
                        stddev=0.0,  # field 6 does not exist in v4
                    )
                )
        return out

    def aligned_windows(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        params = pb.AlignedWindowsParams.FromString(request)
        _stream, stat, times, values, version = self._read(params.uuid)
        if stat is not None:
            yield pb.AlignedWindowsResponse(stat=stat).SerializeToString()
            return
        width = 1 << params.pointWidth
        first = -(-params.start // width) * width  # windows fully inside [start, end) only
        edges = list(range(first, params.end - width + 1, width))
        edges = [*edges, edges[-1] + width] if edges else []
        points = self._stat_windows(times, values, edges) if edges else []
        yield pb.AlignedWindowsResponse(versionMajor=version, values=points).SerializeToString()

    def windows(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        params = pb.WindowsParams.FromString(request)
        _stream, stat, times, values, version = self._read(params.uuid)
        if stat is not None:
            yield pb.WindowsResponse(stat=stat).SerializeToString()
            return
        count = (params.end - params.start) // params.width
        edges = [params.start + i * params.width for i in range(count + 1)] if count else []
        points = self._stat_windows(times, values, edges) if edges else []
        yield pb.WindowsResponse(versionMajor=version, values=points).SerializeToString()

    def nearest(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        params = pb.NearestParams.FromString(request)
        _stream, stat, times, values, version = self._read(params.uuid)
        if stat is not None:
            return pb.NearestResponse(stat=stat).SerializeToString()
        if params.backward:
            index = int(np.searchsorted(times, params.time, side="left")) - 1
        else:
            index = int(np.searchsorted(times, params.time, side="left"))
        if not 0 <= index < times.size:
            return pb.NearestResponse(stat=_stat(401, "no such point")).SerializeToString()
        point = pb.RawPoint(time=int(times[index]), value=float(values[index]))
        return pb.NearestResponse(versionMajor=version, value=point).SerializeToString()

    def delete(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        params = pb.DeleteParams.FromString(request)
        with self.store.lock:
            stream, stat = self._stream(params.uuid)
            if stat is not None or stream is None:
                return pb.DeleteResponse(stat=stat).SerializeToString()
            keep = (stream.times < params.start) | (stream.times >= params.end)
            stream.times, stream.values = stream.times[keep], stream.values[keep]
            stream.version += 1
            return pb.DeleteResponse(versionMajor=stream.version).SerializeToString()

    def flush(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        params = pb.FlushParams.FromString(request)
        with self.store.lock:
            stream, stat = self._stream(params.uuid)
            if stat is not None or stream is None:
                return pb.FlushResponse(stat=stat).SerializeToString()
            return pb.FlushResponse(versionMajor=stream.version).SerializeToString()

    def obliterate(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        params = pb.ObliterateParams.FromString(request)
        with self.store.lock:
            stream, stat = self._stream(params.uuid)
            if stat is not None or stream is None:
                return pb.ObliterateResponse(stat=stat).SerializeToString()
            del self.store.streams[params.uuid]
        return pb.ObliterateResponse().SerializeToString()

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        unary = grpc.unary_unary_rpc_method_handler
        stream = grpc.unary_stream_rpc_method_handler
        btrdb = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Info": unary(self.info),
                "Create": unary(self.create),
                "StreamInfo": unary(self.stream_info),
                "SetStreamAnnotations": unary(self.set_stream_annotations),
                "LookupStreams": stream(self.lookup_streams),
                "ListCollections": stream(self.list_collections),
                "Insert": unary(self.insert),
                "RawValues": stream(self.raw_values),
                "AlignedWindows": stream(self.aligned_windows),
                "Windows": stream(self.windows),
                "Nearest": unary(self.nearest),
                "Delete": unary(self.delete),
                "Flush": unary(self.flush),
                "Obliterate": unary(self.obliterate),
            },
        )
        return [btrdb, _UnknownService(PLATFORM_SERVICE)]


class _UnknownService(grpc.GenericRpcHandler):
    """Answers every method of ``service`` as grpc-go does for a service it does not have."""

    def __init__(self, service: str) -> None:
        self._service = service

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if not handler_call_details.method.startswith(f"/{self._service}/"):
            return None

        def refuse(request: bytes, context: grpc.ServicerContext) -> bytes:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"unknown service {self._service}")
            return b""

        return grpc.unary_unary_rpc_method_handler(refuse)


class RunningDouble:
    """A double listening on 127.0.0.1 (free port); stop it with :meth:`stop`."""

    def __init__(self, store: Store, behaviour: Behaviour) -> None:
        self.store = store
        self.behaviour = behaviour
        self.servicer = BTrDBDouble(store, behaviour)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=16), compression=behaviour.compression
        )
        self._server.add_generic_rpc_handlers(self.servicer.handlers())
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"127.0.0.1:{self.port}"
        self._server.start()

    def stop(self) -> None:
        self._server.stop(None).wait(10)

    def inserts(self) -> list[InsertRecord]:
        with self.store.lock:
            return list(self.store.inserts)
