"""The metadata store: one class assembled from the parts that share one SQLite file."""

from __future__ import annotations

from pingthings.server.metadata.streams import StreamsMixin


class MetadataStore(StreamsMixin):
    """Stream metadata, devices, units, collection properties and retention in one SQLite file.

    Thread-safe; every method is blocking, so call it from a worker thread in async code.

    Parameters
    ----------
    path
        The database file; created with the schema and the default units when missing.
    clock
        Returns the wall-clock time in ns (default :func:`time.time_ns`); injectable for tests.
    """
