"""ListCollections for v4 and v5 servers alike.

A v5 server streams every collection name under the prefix and ignores fields it does not know. A
BTrDB 4 server answers one page: it needs a start-with value (field 2) that begins with the prefix and a
limit (field 3) of 1..10000, and refuses the call without them (``[421] starting parameter does not have
the prefix``). So every request carries both, and the client asks for the next page, starting at the last
name received, until a page brings fewer names than the limit or nothing new. Against a v5 server that
is one call (two when there are at least :data:`PAGE_SIZE` names).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pingthings._proto.v5api import ListCollectionsParams, ListCollectionsResponse
from pingthings.timeseries._rpc import call_stream, decode_checked
from pingthings.wire.protowire import VARINT, encode_key, encode_len_field, encode_varint

if TYPE_CHECKING:
    from pingthings.timeseries._rpc import CallTarget

PAGE_SIZE = 10_000
"""Names asked for per call: the largest limit a BTrDB 4 server accepts."""

_START_WITH, _LIMIT = 2, 3  # the v4 ListCollectionsParams fields


def page_request(prefix: str, start_with: str, limit: int = PAGE_SIZE) -> bytes:
    """ListCollectionsParams with the v4 start-with and limit fields added to the v5 message."""
    head = bytes(ListCollectionsParams(prefix=prefix))
    return (
        head
        + encode_len_field(_START_WITH, start_with.encode())
        + encode_key(_LIMIT, VARINT)
        + encode_varint(limit)
    )


async def list_collections(client: CallTarget, prefix: str) -> list[str]:
    """Every collection name starting with ``prefix``, sorted, from as many pages as it takes."""
    names: set[str] = set()
    start_with = prefix
    while True:
        page: list[str] = []
        async with call_stream(client, "ListCollections", page_request(prefix, start_with)) as messages:
            async for payload in messages:
                page.extend(decode_checked(payload, ListCollectionsResponse).collections)
        fresh = set(page) - names
        names |= fresh
        if len(page) < PAGE_SIZE or not fresh:
            return sorted(names)
        start_with = max(page)  # a v4 page starts at this name (inclusive); it is already counted
