"""SQLite store for stream metadata, devices, units, collection properties and retention.

``MetadataStore(path, clock=time.time_ns)`` is thread-safe and blocking (call it from worker
threads in async code). Errors are :mod:`pingthings.server.errors` classes carrying v5 codes.

Streams (contract in docs/architecture.md; rules in :mod:`.validation` and :mod:`.streams`):
``create_stream``, ``get_stream``, ``stream_exists``, ``obliterate_stream``, ``lookup_streams``,
``list_collections``, ``set_annotations``, ``set_tags``, ``metadata_usage``, ``record_write``.

SQL: ``sql_query(query, params)`` runs one PostgreSQL-flavoured SELECT over the read-only
``streams`` view (:mod:`.sql`, :mod:`.sql_rewrite`); rows come back as dicts.

Devices (:mod:`.devices`): ``create_device(fields)``, ``get_device(id)``, ``list_devices()``,
``update_device(fields_with_id, replace=False)``, ``delete_device(id)``.

Units (:mod:`.units`): ``create_unit(fields)``, ``get_unit(id)``, ``list_units()``,
``update_unit(fields_with_id)``, ``delete_unit(id)``; a new database holds default units.

Retention (:mod:`.retention_store`): ``set_collection_retention(collection, ns | None,
override_per_stream)``, ``clear_collection_retention``, ``get_collection_properties``,
``set_stream_retention(uuid, ns | None, override)``, ``clear_stream_retention``,
``get_stream_retention(uuid) -> (own, effective)``, ``retention_targets()``.
"""

from pingthings.server.metadata.devices import DEVICE_FIELDS
from pingthings.server.metadata.records import CollectionProperties, RetentionPolicy, StreamRecord
from pingthings.server.metadata.store import MetadataStore
from pingthings.server.metadata.units import UNIT_FIELDS
from pingthings.server.metadata.validation import ALLOWED_TAG_KEYS

__all__ = [
    "ALLOWED_TAG_KEYS",
    "DEVICE_FIELDS",
    "UNIT_FIELDS",
    "CollectionProperties",
    "MetadataStore",
    "RetentionPolicy",
    "StreamRecord",
]
