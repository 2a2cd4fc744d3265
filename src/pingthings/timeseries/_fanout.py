"""Running many calls at once under one task group; the first failure cancels the rest."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import anyio

from pingthings.timeseries._progress import Progress
from pingthings.timeseries.exceptions import PingThingsError

T = TypeVar("T")

Call = tuple[Any, ...]  # (async function, *positional arguments)


def _label_error(exc: BaseException, label: str) -> None:
    """Put ``label`` (e.g. the stream's UUID) into the error's message."""
    if isinstance(exc, PingThingsError):
        exc.message = f"stream {label}: {exc.message}"
        exc.args = (exc.message, *exc.args[1:])
    else:
        exc.add_note(f"while working on stream {label}")


async def gather(
    calls: Sequence[Call],
    labels: Sequence[str] | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> list[Any]:
    """Await every ``fn(*args)`` of ``calls`` concurrently; results in the order of ``calls``.

    The RPC helpers each hold the client's CapacityLimiter while talking to the server, so the
    number of calls in flight stays within the client's concurrency limit however many tasks
    are started here.

    Parameters
    ----------
    calls
        ``(async_fn, *args)`` tuples.
    labels
        One label per call (a stream UUID); the first error raised is re-raised with its label
        in the message.
    progress
        Told ``update(1)`` as each call finishes.
    workers
        Run at most this many calls at once (pass the client's concurrency limit): the others wait
        their turn here rather than in the client's limiter queue, whose length ``max_waiting``
        bounds. None starts every call at once.

    Raises
    ------
    Exception
        The first failure, after the other calls were cancelled.
    """
    results: list[Any] = [None] * len(calls)
    failure: list[tuple[int, BaseException]] = []

    async def run(i: int, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        try:
            results[i] = await fn(*args)
        except Exception as exc:
            if not failure:
                failure.append((i, exc))
            tg.cancel_scope.cancel()
            return
        if progress is not None:
            progress.update(1)

    if len(calls) == 1:
        fn, *args = calls[0]
        try:
            results[0] = await fn(*args)
        except Exception as exc:
            if labels is not None:
                _label_error(exc, labels[0])
            raise
        if progress is not None:
            progress.update(1)
        return results

    if workers is None or workers >= len(calls):
        async with anyio.create_task_group() as tg:
            for i, (fn, *args) in enumerate(calls):
                tg.start_soon(run, i, fn, tuple(args))
    else:
        pending = iter(enumerate(calls))

        async def worker() -> None:
            for i, (fn, *args) in pending:  # shared iterator: each call is taken by one worker
                await run(i, fn, tuple(args))

        async with anyio.create_task_group() as tg:
            for _ in range(max(1, workers)):
                tg.start_soon(worker)
    if failure:
        index, first = failure[0]
        if labels is not None:
            _label_error(first, labels[index])
        raise first
    return results
