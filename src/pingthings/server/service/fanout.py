"""Multi-stream requests: repeated streams count once, and the number of distinct ones is capped.

A request naming one stream a thousand times would otherwise make the server read and join it a
thousand times; one naming more streams than ``max_streams_per_request`` would hold that many
readers at once.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

from pingthings.server.errors import WrongArgs

K = TypeVar("K", bound=Hashable)


def distinct(items: Sequence[K], cap: int, what: str) -> list[K]:
    """``items`` without repeats (first occurrences, in order); WrongArgs (421) past ``cap``.

    Parameters
    ----------
    items
        Hashable stream keys (uuid, or uuid and version).
    cap
        Most distinct items allowed.
    what
        The request's name, for the error message.
    """
    unique = list(dict.fromkeys(items))
    if len(unique) > cap:
        raise WrongArgs(
            f"{what} names {len(unique)} distinct streams; the server's limit is {cap} per request "
            "(max_streams_per_request): split the request"
        )
    return unique


def distinct_streams(
    uuids: Sequence[bytes], versions: Sequence[int], cap: int, what: str
) -> tuple[list[bytes], list[int]]:
    """Drop repeated (uuid, version) pairs; one uuid at two versions is refused (421)."""
    pairs = distinct(list(zip(uuids, versions, strict=True)), cap, what)
    if len({uuid for uuid, _ in pairs}) != len(pairs):
        raise WrongArgs(f"{what} names one stream at two different versions")
    return [uuid for uuid, _ in pairs], [version for _, version in pairs]
