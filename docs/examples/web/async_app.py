"""A FastAPI service on the async client (runs on uvicorn/asyncio and on hypercorn/trio).

Settings come from the environment: ``BTRDB_ENDPOINTS`` and ``BTRDB_API_KEY`` (read by the client),
``PINGTHINGS_CONCURRENCY_LIMIT`` (calls in flight per worker process) and ``APP_REQUEST_DEADLINE``
(seconds a request may take before it is answered 504).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Annotated, Any
from uuid import UUID

import anyio
import pyarrow as pa
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import StreamingResponse

import pingthings.timeseries as pt
from pingthings.timeseries import AsyncClient, AsyncStream
from pingthings.timeseries.exceptions import InvalidTimeRange
from pingthings.timeseries.http_status import add_exception_handlers

REQUEST_DEADLINE = float(os.environ.get("APP_REQUEST_DEADLINE", "5"))


# Validate at the edge: a bad query parameter is a 422 before the client sees it (the client's
# own argument checks raise plain ValueError/TypeError, which the error handlers leave as 500s).
PointWidth = Annotated[int, Query(ge=0, le=63)]


# --8<-- [start:lifespan]
@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # lazy=True: start even while the platform is down; calls fail with 503 until it is back.
    client = await AsyncClient.connect(lazy=True)
    app.state.client = client
    try:
        yield
    finally:
        await client.aclose()


app = FastAPI(lifespan=lifespan)
add_exception_handlers(app)  # 404 / 400 / 403 / 503 / 504 instead of 500
# --8<-- [end:lifespan]


# --8<-- [start:depends]
def get_client(request: Request) -> AsyncClient:
    """The worker process's one client, opened by the lifespan."""
    client: AsyncClient = request.app.state.client
    return client


Client = Annotated[AsyncClient, Depends(get_client)]


@app.get("/streams/{uuid}/count")
async def count(uuid: UUID, client: Client) -> dict[str, Any]:
    with anyio.fail_after(REQUEST_DEADLINE):  # the per-request deadline: 504 when it passes
        stream = await client.stream_from_uuid(uuid)
        return {"uuid": str(uuid), "count": await stream.count()}
# --8<-- [end:depends]


@app.get("/streams/{uuid}/windows")
async def windows(
    uuid: UUID, start: int, end: int, client: Client, pointwidth: PointWidth = 30
) -> dict[str, Any]:
    """Aligned-window statistics, one list per column (times in ns)."""
    with anyio.fail_after(REQUEST_DEADLINE):
        stream = await client.stream_from_uuid(uuid)
        table = await stream.aligned_windows(start, end, pointwidth)
    return {
        "time": table.column("time").cast(pa.int64()).to_pylist(),
        "mean": table.column("mean").to_pylist(),
        "count": table.column("count").to_pylist(),
    }


@app.get("/streams/{uuid}/raw")
async def raw(uuid: UUID, start: int, end: int, client: Client) -> dict[str, Any]:
    """A small raw read as JSON (for large ones, see the streaming routes)."""
    with anyio.fail_after(REQUEST_DEADLINE):
        stream = await client.stream_from_uuid(uuid)
        table = await stream.raw_values(start, end)
    return {
        "time": table.column("time").cast(pa.int64()).to_pylist(),
        "value": table.column("value").to_pylist(),
    }


# --8<-- [start:streaming]
async def checked_stream(client: AsyncClient, uuid: UUID, start: int, end: int) -> AsyncStream:
    """Fail before the response starts: once the body streams, the status can no longer change."""
    if start >= end:
        raise InvalidTimeRange(f"start ({start}) must be before end ({end})")
    with anyio.fail_after(REQUEST_DEADLINE):
        stream = await client.stream_from_uuid(uuid)
        await stream.refresh_metadata()  # StreamNotFoundError -> 404
    return stream


@app.get("/streams/{uuid}/raw.ndjson")
async def raw_ndjson(uuid: UUID, start: int, end: int, client: Client) -> StreamingResponse:
    """Every point of [start, end) as one JSON object a line, one server chunk in memory at a time."""
    stream = await checked_stream(client, uuid, start, end)

    async def lines() -> AsyncIterator[bytes]:
        async with aclosing(stream.raw_values_iter(start, end)) as tables:
            async for table in tables:
                times = table.column("time").cast(pa.int64()).to_pylist()
                values = table.column("value").to_pylist()
                pairs = zip(times, values, strict=True)
                yield "".join(f'{{"time":{t},"value":{v!r}}}\n' for t, v in pairs).encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson")


class _Pending:
    """A write-only file that keeps what was written until it is taken."""

    closed = False

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


@app.get("/streams/{uuid}/raw.arrow")
async def raw_arrow(uuid: UUID, start: int, end: int, client: Client) -> StreamingResponse:
    """The same read as an Arrow IPC stream (``pyarrow.ipc.open_stream`` reads it back)."""
    stream = await checked_stream(client, uuid, start, end)

    async def batches() -> AsyncIterator[bytes]:
        pending = _Pending()
        with pa.ipc.new_stream(pa.PythonFile(pending, mode="w"), pt.constants.RAW_VALUES_SCHEMA) as writer:
            async with aclosing(stream.raw_values_iter(start, end)) as tables:
                async for table in tables:
                    writer.write_table(table)
                    yield pending.take()
        yield pending.take()  # the end-of-stream marker

    return StreamingResponse(batches(), media_type="application/vnd.apache.arrow.stream")
# --8<-- [end:streaming]


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: answers while the platform is down (the app itself is fine)."""
    return {"status": "ok"}
