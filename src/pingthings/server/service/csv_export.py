"""GenerateCSV: one query per stream, merged on time into CSV rows (one row per message)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from pingthings._proto import v5api
from pingthings.server.errors import InvalidPointWidth, RequestTooSlow, WrongArgs
from pingthings.server.service.convert import blocking, drain_chunks
from pingthings.server.service.csv_merge import Chunk, merged_rows
from pingthings.server.service.fanout import distinct
from pingthings.server.service.state import ServiceState
from pingthings.server.service.visibility import visible_uuid
from pingthings.server.service.window_slices import windows_in_slices
from pingthings.wire.csv_rows import encode_csv_row

QueryType = v5api.GenerateCsvParamsQueryType
_STAT_PARTS = ("Min", "Mean", "Max", "Count")


class CsvHandlers:
    """Handler for GenerateCSV."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state

    async def _source(
        self, request: v5api.GenerateCsvParams, config: v5api.StreamCsvConfig
    ) -> tuple[int, AsyncIterator[Chunk]]:
        """The version read and the chunks of one stream's part of the CSV (checked before any row)."""
        engine = self.state.engine
        uuid = visible_uuid(self.state.meta, config.uuid)
        start, end, version = request.start_time, request.end_time, config.version
        if request.query_type == QueryType.RAW_QUERY:
            got, chunk_iter = await blocking(
                engine.iter_raw_values, uuid, start, end, version, decode_ahead=False
            )
            return got, _raw_chunks(drain_chunks(chunk_iter))
        if request.query_type == QueryType.ALIGNED_WINDOWS_QUERY:
            if request.depth > 63:
                raise InvalidPointWidth("point width (depth) must be within 0..63")
            got, w = await blocking(engine.aligned_windows, uuid, start, end, request.depth, version)
            return got, _stat_chunks(_one(got, w))
        if request.query_type == QueryType.WINDOWS_QUERY:
            if request.window_size == 0:
                raise InvalidPointWidth("window width must be at least 1 ns")
            slices = windows_in_slices(engine, uuid, start, end, request.window_size, version)
            first = await anext(slices)
            return first[0], _stat_chunks(_prepend(first, slices))
        raise WrongArgs(f"unknown CSV query type {int(request.query_type)}")

    async def generate_csv(self, request: v5api.GenerateCsvParams) -> AsyncIterator[bytes]:
        """Emit the header row, then one row per distinct (time, occurrence) across the streams.

        Each row is a serialised ``GenerateCSVResponse`` (see :mod:`pingthings.wire.csv_rows`).

        Rows are built from a chunk of each stream at a time (see :mod:`.csv_merge`), and the
        request stops with 426 once it has run longer than the server's ``csv_seconds``.
        """
        if not request.streams:
            raise WrongArgs("GenerateCSV needs at least one stream")
        budget = self.state.csv_seconds
        deadline = time.monotonic() + budget

        def check_time() -> None:
            if time.monotonic() > deadline:
                raise RequestTooSlow(
                    f"GenerateCSV ran longer than the server's time budget of {budget:g} s per request "
                    "(csv_seconds); ask for a shorter time range or fewer streams"
                )

        wanted = distinct(
            [(bytes(c.uuid), c.version, c.label) for c in request.streams],
            self.state.max_streams_per_request,
            "GenerateCSV",
        )
        configs = [
            v5api.StreamCsvConfig(uuid=uuid, version=version, label=label) for uuid, version, label in wanted
        ]
        sources: list[AsyncIterator[Chunk]] = []
        try:
            versions = []
            for config in configs:
                got, chunks = await self._source(request, config)
                versions.append(got)
                sources.append(chunks)
                check_time()
            raw = request.query_type == QueryType.RAW_QUERY
            header = ["Timestamp (ns)", "Human-Readable Time (UTC)"]
            for config, version in zip(configs, versions, strict=True):
                label = config.label + (f", ver. {version}" if request.include_versions else "")
                header += [label] if raw else [f"{label} ({part})" for part in _STAT_PARTS]
            yield encode_csv_row(header, is_header=True)
            async for row in merged_rows(sources, raw, check_time):
                yield encode_csv_row(row)
        finally:
            for source in sources:
                await source.aclose()  # type: ignore[attr-defined]


async def _raw_chunks(chunks: AsyncIterator[tuple[np.ndarray, np.ndarray]]) -> AsyncIterator[Chunk]:
    try:
        async for times, values in chunks:
            yield times, [values]
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


async def _stat_chunks(slices: AsyncIterator[tuple[int, Any]]) -> AsyncIterator[Chunk]:
    async for _, w in slices:
        yield w.time, [w.min, w.mean, w.max, w.count]


async def _one(version: int, windows: Any) -> AsyncIterator[tuple[int, Any]]:
    yield version, windows


async def _prepend(
    first: tuple[int, Any], rest: AsyncIterator[tuple[int, Any]]
) -> AsyncIterator[tuple[int, Any]]:
    yield first
    async for item in rest:
        yield item
