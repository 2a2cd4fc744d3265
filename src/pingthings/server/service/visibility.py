"""Hidden streams: to a caller without an admin key they do not exist.

A stream whose ``hidden`` tag is true is left out of every listing for such a caller, and every
call that names it by uuid fails exactly as for a uuid that names nothing (404, ``stream does not
exist``), so neither its data nor its existence leaks. The check reads the metadata store's
in-memory set of hidden uuids: no database read, no worker thread.
"""

from __future__ import annotations

from typing import Any

from pingthings.server.errors import StreamNotFound
from pingthings.server.service.context import is_admin
from pingthings.server.service.convert import require_uuid


def require_visible(meta: Any, uuid: bytes) -> bytes:
    """Return ``uuid``, or raise StreamNotFound when it is hidden from the current caller.

    Parameters
    ----------
    meta
        The metadata store (``MetadataStore``; its ``is_hidden_stream`` is consulted).
    uuid
        A 16-byte stream uuid.
    """
    if not is_admin() and meta.is_hidden_stream(uuid):
        raise StreamNotFound()
    return uuid


def visible_uuid(meta: Any, raw: bytes) -> bytes:
    """Check that ``raw`` is a 16-byte uuid (421 otherwise) naming a stream the caller may see."""
    return require_visible(meta, require_uuid(raw))
