"""The bench's baseline: the example app's routes on the official ``btrdb`` client (grpcio).

``def`` endpoints, so FastAPI runs them in its thread pool, as a btrdb user would write them. One
``btrdb`` connection per worker process, opened by the lifespan from ``BTRDB_ENDPOINTS``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import btrdb
from fastapi import FastAPI, Request


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.db = btrdb.connect(conn_str=os.environ["BTRDB_ENDPOINTS"])
    try:
        yield
    finally:
        app.state.db.close()


app = FastAPI(lifespan=lifespan)


@app.get("/streams/{uuid}/count")
def count(uuid: UUID, request: Request) -> dict[str, Any]:
    return {"uuid": str(uuid), "count": request.app.state.db.stream_from_uuid(uuid).count()}


@app.get("/streams/{uuid}/windows")
def windows(uuid: UUID, start: int, end: int, request: Request, pointwidth: int = 30) -> dict[str, Any]:
    points = request.app.state.db.stream_from_uuid(uuid).aligned_windows(start, end, pointwidth)
    return {
        "time": [p.time for p, _ in points],
        "mean": [p.mean for p, _ in points],
        "count": [p.count for p, _ in points],
    }


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
