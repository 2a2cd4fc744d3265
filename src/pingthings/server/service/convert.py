"""Small conversions between wire messages and the engine/metadata vocabulary."""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import anyio.to_thread

from pingthings._proto.v5api import KeyOptValue, OptValue, StreamDescriptor
from pingthings.server.errors import WrongArgs
from pingthings.server.grpc.eager import needs_task

T = TypeVar("T")


def require_uuid(raw: bytes) -> bytes:
    """Return ``raw`` if it is a 16-byte uuid, else raise WrongArgs (421)."""
    if len(raw) != 16:
        raise WrongArgs(f"uuid must be 16 bytes, got {len(raw)}")
    return bytes(raw)


def opt_map(pairs: Iterable[KeyOptValue]) -> dict[str, str | None]:
    """Turn KeyOptValue entries into a dict; an entry without ``val`` maps to ``None``."""
    return {pair.key: (pair.val.value if pair.val is not None else None) for pair in pairs}


def opt_pairs(mapping: dict[str, str | None]) -> list[KeyOptValue]:
    """Turn a dict into KeyOptValue entries, sorted by key; ``None`` becomes an absent ``val``."""
    return [
        KeyOptValue(key=key, val=None if value is None else OptValue(value=value))
        for key, value in sorted(mapping.items())
    ]


def descriptor_of(record: Any) -> StreamDescriptor:
    """Build the wire descriptor of a metadata ``StreamRecord``."""
    return StreamDescriptor(
        uuid=record.uuid,
        collection=record.collection,
        tags=opt_pairs(record.tags),
        annotations=opt_pairs(record.annotations),
        property_version=record.property_version,
    )


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Yield consecutive slices of at most ``size`` items (at least one slice, maybe empty)."""
    if not items:
        yield items[:0]
        return
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def drain_chunks(chunk_iter: Iterator[T]) -> AsyncGenerator[T, None]:
    """Pull an engine chunk iterator item by item in worker threads, closing it at the end.

    Closing matters when the caller stops early (client gone, error): the engine may hold a
    read snapshot until its iterator is closed.
    """
    sentinel: Any = object()
    try:
        while True:
            item = await anyio.to_thread.run_sync(next, chunk_iter, sentinel)
            if item is sentinel:
                return
            yield item
    finally:
        close = getattr(chunk_iter, "close", None)
        if close is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(close)


async def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking engine or metadata call in a worker thread (the loop never blocks)."""
    await needs_task()  # anyio needs the current task, which an eager handler's first step lacks
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))
