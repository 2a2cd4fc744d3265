"""Merging several time-sorted streams of chunks into CSV rows, a bounded piece at a time.

Each source is an async iterator of ``(times, columns)`` chunks in time order. Rows are keyed by
``(time, occurrence)``: the n-th point at one time in one stream shares a row with the n-th
point at that time in the others. Rows are emitted for every time below the *horizon*, the
smallest last time buffered among the sources that are not finished: no later chunk can hold
such a time, so its occurrences are complete. Memory is a chunk per source, whatever the result.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np

Chunk = tuple[np.ndarray, list[np.ndarray]]


def human_time(ns: int) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` of a time in ns since the epoch (whole seconds)."""
    seconds, _ = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def occurrence(times: np.ndarray) -> np.ndarray:
    """For sorted times, the index of each point among the points sharing its time."""
    if len(times) == 0:
        return np.empty(0, np.int64)
    starts = np.r_[True, times[1:] != times[:-1]]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(len(times)), 0))
    return np.arange(len(times)) - group_start


def format_rows(parts: list[Chunk], raw: bool) -> Iterator[list[str]]:
    """CSV rows for pieces of the sources that together hold every point of their times.

    The join is done on arrays: each point gets the index of its ``(time, occurrence)`` row, each
    stream a row -> point table. Only the row being formatted exists as Python strings, so memory is
    a few arrays of the pieces' length, not an object per point.
    """
    sizes = [len(times) for times, _ in parts]
    if not sum(sizes):
        return
    all_times = np.concatenate([times.astype(np.int64, copy=False) for times, _ in parts])
    all_occ = np.concatenate([occurrence(times) for times, _ in parts])
    order = np.lexsort((all_occ, all_times))
    sorted_times, sorted_occ = all_times[order], all_occ[order]
    starts = np.empty(len(order), dtype=bool)
    starts[0] = True
    np.not_equal(sorted_times[1:], sorted_times[:-1], out=starts[1:])
    starts[1:] |= sorted_occ[1:] != sorted_occ[:-1]
    row_of = np.empty(len(order), np.int64)
    row_of[order] = np.cumsum(starts) - 1
    row_times = sorted_times[starts].tolist()
    del all_times, all_occ, order, sorted_times, sorted_occ, starts
    # For each stream, the point on each row (-1 for none) and its columns as Python numbers.
    slots: list[list[int]] = []
    cells: list[list[list[Any]]] = []
    offset = 0
    for size, (_, columns) in zip(sizes, parts, strict=True):
        point_on_row = np.full(len(row_times), -1, np.int64)
        point_on_row[row_of[offset:offset + size]] = np.arange(size)
        offset += size
        slots.append(point_on_row.tolist())
        cells.append([c.tolist() for c in columns])
    width = 1 if raw else 4
    empty = [""] * width
    last_second, last_text = -1, ""
    for r, t in enumerate(row_times):
        second = t // 1_000_000_000
        if second != last_second:
            last_second, last_text = second, human_time(t)
        row = [str(t), last_text]
        for points_by_row, values in zip(slots, cells, strict=True):
            i = points_by_row[r]
            if i < 0:
                row += empty
            elif raw:
                row.append(f"{float(values[0][i]):f}")
            else:
                row += [
                    f"{float(values[0][i]):f}",
                    f"{float(values[1][i]):f}",
                    f"{float(values[2][i]):f}",
                    f"{int(values[3][i]):d}",
                ]
        yield row


async def merged_rows(
    sources: list[AsyncIterator[Chunk]], raw: bool, check_time: Callable[[], None]
) -> AsyncIterator[list[str]]:
    """Yield the CSV rows of all sources in (time, occurrence) order; ``check_time`` runs between pieces.

    Parameters
    ----------
    sources
        One chunk iterator per stream (``times`` sorted, ``columns`` aligned with them).
    raw
        One value column per stream (raw points) instead of four (min, mean, max, count).
    check_time
        Raises when the request has used up its time budget.
    """
    n = len(sources)
    buffers: list[Chunk | None] = [None] * n
    done = [False] * n

    async def pull(k: int) -> None:
        chunk = await anext(sources[k], None)
        check_time()
        if chunk is None:
            done[k] = True
            return
        held = buffers[k]
        if held is None or not len(held[0]):
            buffers[k] = chunk
        else:
            buffers[k] = (
                np.concatenate([held[0], chunk[0]]),
                [np.concatenate([a, b]) for a, b in zip(held[1], chunk[1], strict=True)],
            )

    while True:
        for k in range(n):
            while not done[k] and (buffers[k] is None or not len(buffers[k][0])):  # type: ignore[index]
                await pull(k)
        live = [k for k in range(n) if not done[k]]
        horizon = min(int(buffers[k][0][-1]) for k in live) if live else None  # type: ignore[index]
        parts: list[Chunk] = []
        emitted = 0
        for k in range(n):
            held = buffers[k]
            if held is None:
                parts.append((np.empty(0, np.int64), []))
                continue
            cut = len(held[0]) if horizon is None else int(np.searchsorted(held[0], horizon, "left"))
            parts.append((held[0][:cut], [c[:cut] for c in held[1]]))
            buffers[k] = (held[0][cut:], [c[cut:] for c in held[1]])
            emitted += cut
        for row in format_rows([p if p[1] else (p[0], [p[0]] * (1 if raw else 4)) for p in parts], raw):
            yield row
        if horizon is None:
            return
        if not emitted:  # every point left sits at the horizon: read on past it where it ends a buffer
            for k in live:
                if int(buffers[k][0][-1]) == horizon:  # type: ignore[index]
                    await pull(k)
