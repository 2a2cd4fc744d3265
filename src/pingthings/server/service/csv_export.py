"""GenerateCSV: one query per stream, merged on time into CSV rows (one row per message)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import numpy as np

from pingthings._proto import v5api
from pingthings.server.errors import InvalidPointWidth, WrongArgs
from pingthings.server.service.convert import blocking
from pingthings.server.service.fanout import distinct
from pingthings.server.service.state import ServiceState
from pingthings.server.service.visibility import visible_uuid

QueryType = v5api.GenerateCsvParamsQueryType
_STAT_PARTS = ("Min", "Mean", "Max", "Count")


def _human_time(ns: int) -> str:
    seconds, _ = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _occurrence(times: np.ndarray) -> np.ndarray:
    """For sorted times, the index of each point among the points sharing its time."""
    if len(times) == 0:
        return np.empty(0, np.int64)
    starts = np.r_[True, times[1:] != times[:-1]]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(len(times)), 0))
    return np.arange(len(times)) - group_start


class CsvHandlers:
    """Handler for GenerateCSV."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state

    async def _query(
        self, request: v5api.GenerateCsvParams, config: v5api.StreamCsvConfig
    ) -> tuple[int, np.ndarray, list[np.ndarray]]:
        engine = self.state.engine
        uuid = visible_uuid(self.state.meta, config.uuid)
        start, end, version = request.start_time, request.end_time, config.version
        if request.query_type == QueryType.RAW_QUERY:
            got, times, values = await blocking(engine.raw_values, uuid, start, end, version)
            return got, times, [values]
        if request.query_type == QueryType.ALIGNED_WINDOWS_QUERY:
            if request.depth > 63:
                raise InvalidPointWidth("point width (depth) must be within 0..63")
            got, w = await blocking(engine.aligned_windows, uuid, start, end, request.depth, version)
        elif request.query_type == QueryType.WINDOWS_QUERY:
            if request.window_size == 0:
                raise InvalidPointWidth("window width must be at least 1 ns")
            got, w = await blocking(engine.windows, uuid, start, end, request.window_size, version)
        else:
            raise WrongArgs(f"unknown CSV query type {int(request.query_type)}")
        return got, w.time, [w.min, w.mean, w.max, w.count]

    async def generate_csv(
        self, request: v5api.GenerateCsvParams
    ) -> AsyncIterator[v5api.GenerateCsvResponse]:
        """Emit the header row, then one row per distinct (time, occurrence) across the streams."""
        if not request.streams:
            raise WrongArgs("GenerateCSV needs at least one stream")
        wanted = distinct(
            [(bytes(c.uuid), c.version, c.label) for c in request.streams],
            self.state.max_streams_per_request,
            "GenerateCSV",
        )
        configs = [
            v5api.StreamCsvConfig(uuid=uuid, version=version, label=label) for uuid, version, label in wanted
        ]
        results = [await self._query(request, config) for config in configs]
        raw = request.query_type == QueryType.RAW_QUERY
        header = ["Timestamp (ns)", "Human-Readable Time (UTC)"]
        for config, (version, _, _) in zip(configs, results, strict=True):
            label = config.label + (f", ver. {version}" if request.include_versions else "")
            header += [label] if raw else [f"{label} ({part})" for part in _STAT_PARTS]
        yield v5api.GenerateCsvResponse(is_header=True, row=header)

        keys = [(times.astype(np.int64), _occurrence(times)) for _, times, _ in results]
        all_times = np.concatenate([k[0] for k in keys]) if keys else np.empty(0, np.int64)
        all_occ = np.concatenate([k[1] for k in keys]) if keys else np.empty(0, np.int64)
        rows = (
            np.unique(np.stack([all_times, all_occ], axis=1), axis=0) if len(all_times) else np.empty((0, 2))
        )
        per_stream: list[dict[tuple[int, int], list[Any]]] = []
        for (times, occ), (_, _, columns) in zip(keys, results, strict=True):
            per_stream.append(
                {
                    (int(t), int(o)): [c[i] for c in columns]
                    for i, (t, o) in enumerate(zip(times, occ, strict=True))
                }
            )
        width = 1 if raw else len(_STAT_PARTS)
        for t, o in rows:
            key = (int(t), int(o))
            row = [str(key[0]), _human_time(key[0])]
            for lookup in per_stream:
                cells = lookup.get(key)
                if cells is None:
                    row += [""] * width
                elif raw:
                    row.append(f"{float(cells[0]):f}")
                else:
                    row += [
                        f"{float(cells[0]):f}",
                        f"{float(cells[1]):f}",
                        f"{float(cells[2]):f}",
                        f"{int(cells[3]):d}",
                    ]
            yield v5api.GenerateCsvResponse(row=row)
