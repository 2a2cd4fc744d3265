"""The metadata store: one class assembled from the parts that share one SQLite file."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from os import PathLike
from typing import Any

from pingthings.server.metadata.devices import DevicesMixin
from pingthings.server.metadata.retention_store import RetentionMixin
from pingthings.server.metadata.sql import SqlSandbox
from pingthings.server.metadata.streams import StreamsMixin
from pingthings.server.metadata.units import UnitsMixin


class MetadataStore(StreamsMixin, DevicesMixin, UnitsMixin, RetentionMixin):
    """Stream metadata, devices, units, collection properties and retention in one SQLite file.

    Thread-safe; every method is blocking, so call it from a worker thread in async code.

    Parameters
    ----------
    path
        The database file; created with the schema and the default units when missing.
    clock
        Returns the wall-clock time in ns (default :func:`time.time_ns`); injectable for tests.
    sql_seconds
        Time budget of one ``sql_query`` (None: the sandbox's default).
    """

    def __init__(
        self,
        path: str | PathLike[str],
        clock: Callable[[], int] = time.time_ns,
        *,
        sql_seconds: float | None = None,
    ) -> None:
        super().__init__(path, clock)
        self._load_hidden()
        self._sql = SqlSandbox(self.path, query_seconds=sql_seconds)

    def sql_query(
        self, query: str, params: Sequence[Any] | None = None, include_hidden: bool = True
    ) -> list[dict[str, Any]]:
        """Run a read-only SELECT over the ``streams`` view (see :class:`SqlSandbox`)."""
        self._check_open()
        return self._sql.query(query, params, include_hidden)

    def interrupt_queries(self) -> None:
        """Stop the ``sql_query`` calls running now (they fail with BadSQL); used at shutdown."""
        self._sql.interrupt()

    def close(self) -> None:
        """Close both connections."""
        self._sql.close()
        super().close()
