"""SQLite store for stream metadata, devices, units, collection properties and retention.

``MetadataStore(path)`` is thread-safe and blocking. Streams (see docs/architecture.md):
``create_stream``, ``get_stream``, ``stream_exists``, ``obliterate_stream``, ``lookup_streams``,
``list_collections``, ``set_annotations``, ``set_tags``, ``metadata_usage``, ``record_write``.
"""

from pingthings.server.metadata.records import CollectionProperties, RetentionPolicy, StreamRecord
from pingthings.server.metadata.store import MetadataStore
from pingthings.server.metadata.validation import ALLOWED_TAG_KEYS

__all__ = ["ALLOWED_TAG_KEYS", "CollectionProperties", "MetadataStore", "RetentionPolicy", "StreamRecord"]
