"""Stream metadata on the wire: descriptors in, tag and annotation changes out.

Annotation values are stored by the server as opaque strings. Like btrdb-python, the client
sends a ``str`` unchanged and any other value as JSON, and reads a stored value back as JSON
when it parses, else as the raw string.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import numpy as np

from pingthings._proto.v5api import KeyOptValue, OptValue, StreamDescriptor


@dataclass(frozen=True)
class StreamMetadata:
    """A decoded :class:`StreamDescriptor`."""

    uuid: UUID
    collection: str
    tags: dict[str, str | None]
    annotations: dict[str, Any]
    property_version: int


def decode_annotation(raw: str | None) -> Any:
    """Turn a stored annotation string back into a Python value (JSON if it parses)."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _json_default(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        return value.isoformat()
    if isinstance(value, np.datetime64):
        return str(np.datetime_as_string(value, unit="ns", timezone="UTC"))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"annotation value of type {type(value).__name__} cannot be stored")


def encode_annotation(value: Any) -> str:
    """The string stored for one annotation value (``str`` as is, anything else as JSON)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=_json_default)


def decode_descriptor(desc: StreamDescriptor) -> StreamMetadata:
    """Decode a wire :class:`StreamDescriptor` into plain Python values."""
    tags = {kv.key: (kv.val.value if kv.val is not None else None) for kv in desc.tags}
    annotations = {
        kv.key: decode_annotation(kv.val.value if kv.val is not None else None) for kv in desc.annotations
    }
    return StreamMetadata(
        uuid=UUID(bytes=bytes(desc.uuid)),
        collection=desc.collection,
        tags=tags,
        annotations=annotations,
        property_version=int(desc.property_version),
    )


def tag_pairs(tags: Mapping[str, str | None]) -> list[KeyOptValue]:
    """Tags as wire key/value pairs (a ``None`` value travels as a key without a value)."""
    out = []
    for key, value in tags.items():
        if not isinstance(key, str):
            raise TypeError(f"tag keys must be str, got {type(key).__name__}")
        if value is not None and not isinstance(value, str):
            raise TypeError(f"tag {key!r} must have a str value, got {type(value).__name__}")
        out.append(KeyOptValue(key=key, val=None if value is None else OptValue(value=value)))
    return out


def annotation_pairs(annotations: Mapping[str, Any]) -> list[KeyOptValue]:
    """Annotations as wire key/value pairs, values encoded by :func:`encode_annotation`."""
    out = []
    for key, value in annotations.items():
        if not isinstance(key, str):
            raise TypeError(f"annotation keys must be str, got {type(key).__name__}")
        out.append(KeyOptValue(key=key, val=OptValue(value=encode_annotation(value))))
    return out
