"""The same service with plain ``def`` endpoints on the synchronous client.

FastAPI runs ``def`` endpoints in its thread pool; every thread shares the one ``Client`` of the
worker process (its calls all go through the client's own event loop thread and connection).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any
from uuid import UUID

import anyio
import pyarrow as pa
from fastapi import Depends, FastAPI, Query, Request

import pingthings.timeseries as pt
from pingthings.timeseries.http_status import add_exception_handlers

# Validate at the edge: a bad query parameter is a 422 before the client sees it (the client's
# own argument checks raise plain ValueError/TypeError, which the error handlers leave as 500s).
PointWidth = Annotated[int, Query(ge=0, le=63)]


# --8<-- [start:sync]
@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    conn = pt.connect(lazy=True)  # starts the client's event loop thread; no network yet
    app.state.conn = conn
    try:
        yield
    finally:
        await anyio.to_thread.run_sync(conn.close)  # close() blocks: keep it off the event loop


app = FastAPI(lifespan=lifespan)
add_exception_handlers(app)


async def get_conn(request: Request) -> pt.Client:
    conn: pt.Client = request.app.state.conn
    return conn


Conn = Annotated[pt.Client, Depends(get_conn)]


@app.get("/streams/{uuid}/count")
def count(uuid: UUID, conn: Conn) -> dict[str, Any]:
    return {"uuid": str(uuid), "count": conn.stream_from_uuid(uuid).count()}
# --8<-- [end:sync]


@app.get("/streams/{uuid}/windows")
def windows(uuid: UUID, start: int, end: int, conn: Conn, pointwidth: PointWidth = 30) -> dict[str, Any]:
    """Aligned-window statistics, one list per column (times in ns)."""
    table = conn.stream_from_uuid(uuid).aligned_windows(start, end, pointwidth)
    return {
        "time": table.column("time").cast(pa.int64()).to_pylist(),
        "mean": table.column("mean").to_pylist(),
        "count": table.column("count").to_pylist(),
    }


@app.get("/streams/{uuid}/raw")
def raw(uuid: UUID, start: int, end: int, conn: Conn) -> dict[str, Any]:
    """A small raw read as JSON."""
    table = conn.stream_from_uuid(uuid).raw_values(start, end)
    return {
        "time": table.column("time").cast(pa.int64()).to_pylist(),
        "value": table.column("value").to_pylist(),
    }


@app.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: answers while the platform is down."""
    return {"status": "ok"}
