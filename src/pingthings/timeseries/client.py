"""``Client``: the synchronous client. For most users the only connection type they need.

Every method runs the matching :class:`~pingthings.timeseries.async_client.AsyncClient` coroutine
on the client's :class:`~pingthings.timeseries.event_loop.ClientEventLoop` and blocks for the result;
no logic lives here. One ``Client`` may be shared by any number of threads. Streams it returns are
the synchronous :class:`Stream` / :class:`StreamSet` wrappers.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pingthings.timeseries._call_policy import CallSettings, TimeoutScope
from pingthings.timeseries.async_client import AsyncClient
from pingthings.timeseries.async_stream import AsyncStream
from pingthings.timeseries.config import ConnectionSettings
from pingthings.timeseries.event_loop import ClientEventLoop
from pingthings.timeseries.stream import Stream
from pingthings.timeseries.streamset import StreamSet

if TYPE_CHECKING:
    from typing import Self

__all__ = ["Client", "ClientEventLoop", "Stream", "StreamSet", "connect"]


class Client:
    """Synchronous client: manages the event loop and the async client it drives.

    Parameters
    ----------
    loop
        The event loop the async client runs on.
    client
        The async client (connected on ``loop``).

    Examples
    --------
    >>> import pingthings.timeseries as pt
    >>> conn = pt.connect(endpoint="127.0.0.1:4410")  # doctest: +SKIP
    >>> conn.info()["major_version"]  # doctest: +SKIP
    5
    """

    def __init__(self, loop: ClientEventLoop, client: AsyncClient) -> None:
        self._loop = loop
        self._client = client

    # ---------------------------------------------------------------------------------- connection
    @staticmethod
    def connect(
        profile: str | None = None,
        endpoint: str | None = None,
        apikey: str | None = None,
        concurrency_limit: int | None = None,
        *,
        tls: bool | None = None,
        ca_bundle: str | None = None,
        connect_timeout: float = 10.0,
        compression: str | None = None,
        insert_batch_size: int | None = None,
        lazy: bool = False,
        timeout: float | None = None,
        retries: int | None = None,
        retry_budget: float | None = None,
        max_waiting: int | None = None,
    ) -> Client:
        """Connect to a server and check it answers (one Info call), or, with ``lazy=True``, later.

        Parameters
        ----------
        profile
            A profile of ``${HOME}/.predictivegrid/credentials.yaml``.
        endpoint
            ``host:port`` of the server, e.g. ``192.168.1.1:4411`` (default ``$BTRDB_ENDPOINTS``).
        apikey
            The API key (default ``$BTRDB_API_KEY``).
        concurrency_limit
            Calls allowed in flight at once (default ``$PINGTHINGS_CONCURRENCY_LIMIT``).
        tls
            Force TLS on or off (default: on for port 4411, or as an ``https://`` endpoint says).
        ca_bundle
            PEM file of CA certificates to trust (default ``$BTRDB_CA_BUNDLE``, else the system's).
        connect_timeout
            Seconds to wait for the TCP/TLS connection.
        compression
            ``"gzip"`` to compress requests (default ``$PINGTHINGS_COMPRESSION``, else none);
            compressed replies are read either way.
        insert_batch_size
            Points per Insert call (default: from the server's version, 25,000 for v4 and 50,000
            for v5).
        lazy
            Return without contacting the server; the first call connects (see
            :meth:`AsyncClient.connect`).
        timeout, retries, retry_budget, max_waiting
            The call policy: per-call timeout, retries of idempotent calls and their time budget,
            and how many calls may queue for the concurrency limiter (see
            :meth:`AsyncClient.connect`).

        Returns
        -------
        Client
            A synchronous client with its own event loop thread, as for
            :meth:`AsyncClient.connect <pingthings.timeseries.async_client.AsyncClient.connect>`.

        Examples
        --------
        >>> import pingthings.timeseries as pt
        >>> conn = pt.connect()  # doctest: +SKIP
        >>> conn = pt.connect(apikey="ABC123", endpoint="example.com:4411")  # doctest: +SKIP
        >>> conn = pt.connect(profile="my_server")  # doctest: +SKIP
        """
        loop = ClientEventLoop()
        try:
            client = loop.call(
                AsyncClient.connect,
                profile,
                endpoint,
                apikey,
                concurrency_limit,
                tls=tls,
                ca_bundle=ca_bundle,
                connect_timeout=connect_timeout,
                compression=compression,
                insert_batch_size=insert_batch_size,
                lazy=lazy,
                timeout=timeout,
                retries=retries,
                retry_budget=retry_budget,
                max_waiting=max_waiting,
            )
        except BaseException:
            loop.close()
            raise
        return Client(loop, client)

    @property
    def call_settings(self) -> CallSettings:
        """Timeout, retries and limiter queue bound of this client's calls."""
        return self._client.call_settings

    @property
    def insert_batch_size(self) -> int:
        """Points sent per Insert call.

        See :attr:`AsyncClient.insert_batch_size`.
        """
        return self._client.insert_batch_size

    @insert_batch_size.setter
    def insert_batch_size(self, value: int) -> None:
        self._client.insert_batch_size = value

    @property
    def proxy_endpoints(self) -> list[str]:
        """The proxy endpoints Info listed (other than the one connected to), tried after a 405."""
        return self._client.proxy_endpoints

    def get_async_client(self) -> AsyncClient:
        """The async client this one drives."""
        return self._client

    def get_event_loop(self) -> ClientEventLoop:
        """The event loop this client runs its calls on."""
        return self._loop

    def close(self) -> None:
        """Close the connection and stop the event loop. Idempotent."""
        if self._loop.closed:
            return
        try:
            if not self._client.closed:
                self._loop.call(self._client.aclose)
        finally:
            self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._loop.closed else "open"
        return f"<Client {self._client.endpoint} {state}>"

    def __reduce__(self) -> Any:
        """Pickle to the connection settings, so worker processes (multiprocessing, Ray, Dask)
        get their own client.

        The unpickled client has its own event loop thread and connects on its first call.
        The pickle holds the API key: treat it like the key itself.
        """
        return (_restore_client, (self._client,))

    @property
    def settings(self) -> ConnectionSettings:
        """The resolved connection settings (what pickling carries to other processes)."""
        return self._client.settings

    def timeout(self, seconds: float | None) -> TimeoutScope:
        """A block in which every call of this client gets ``seconds`` as its timeout.

        Calls made from this thread, that is (see :meth:`AsyncClient.timeout`).

        Examples
        --------
        >>> with conn.timeout(5):  # doctest: +SKIP
        ...     conn.info()
        """
        return self._client.timeout(seconds)

    @property
    def concurrency_limit(self) -> int:
        """The maximum number of calls in flight at once.

        Setting it takes effect at once and overrides ``$PINGTHINGS_CONCURRENCY_LIMIT``.
        """
        return self._client.concurrency_limit

    @concurrency_limit.setter
    def concurrency_limit(self, value: int) -> None:
        self._loop.call(_set_limit, self._client, value)

    # ---------------------------------------------------------------------------------- wrappers
    def _wrap(self, stream: AsyncStream) -> Stream:
        return Stream(self, stream)

    def _wrap_all(self, streams: list[AsyncStream]) -> StreamSet:
        return StreamSet([Stream(self, s) for s in streams])

    # ------------------------------------------------------------------------------------ methods
    def info(self) -> dict[str, Any]:
        """Server and proxy information.

        See :meth:`AsyncClient.info`.
        """
        return self._loop.call(self._client.info)

    def create(
        self,
        uuid: UUID | str,
        collection: str,
        tags: dict[str, str],
        annotations: dict[str, Any] | None = None,
    ) -> Stream:
        """Create a new stream.

        See :meth:`AsyncClient.create`.
        """
        return self._wrap(self._loop.call(self._client.create, uuid, collection, tags, annotations))

    def stream_from_uuid(self, uuid: UUID | str) -> Stream:
        """A handle on the stream with this UUID (no round trip; the stream may not exist).

        Raises TypeError for an invalid UUID.
        """
        return self._wrap(self._client.stream_handle(uuid))

    def streams_in_collection(
        self,
        collection: str = "",
        is_collection_prefix: bool = True,
        tags: dict[str, str] | None = None,
        annotations: dict[str, Any] | None = None,
    ) -> StreamSet:
        """Find streams by collection, tags and annotations.

        See :meth:`AsyncClient.streams_in_collection`.
        """
        found = self._loop.call(
            self._client.streams_in_collection, collection, is_collection_prefix, tags, annotations
        )
        return self._wrap_all(found.streams)

    def streamset_from_uuids(self, uuids: list[UUID | str], fetch_metadata: bool = True) -> StreamSet:
        """A :class:`StreamSet` of the streams with these UUIDs.

        See :meth:`AsyncClient.streamset_from_uuids`.
        """
        found = self._loop.call(self._client.streamset_from_uuids, uuids, fetch_metadata)
        return self._wrap_all(found.streams)

    def list_collections(self, prefix: str | None = None) -> list[str]:
        """Collection names starting with ``prefix`` (all when None), sorted.

        Examples
        --------
        >>> conn.list_collections(prefix="foo")  # doctest: +SKIP
        ['foo', 'foo/bar']
        """
        return self._loop.call(self._client.list_collections, prefix)

    def collection_metadata(self, prefix: str = "") -> tuple[dict[str, int], dict[str, int]]:
        """How many streams under a collection prefix use each tag and annotation key.

        See :meth:`AsyncClient.collection_metadata`.
        """
        return self._loop.call(self._client.collection_metadata, prefix)

    def list_unique_names(self, collection: str | None = None) -> list[str]:
        """The distinct stream names in collections starting with ``collection`` (all when None)."""
        return self._loop.call(self._client.list_unique_names, collection)

    def list_unique_units(self, collection: str | None = None) -> list[str]:
        """The distinct units in collections starting with ``collection`` (all when None)."""
        return self._loop.call(self._client.list_unique_units, collection)

    def list_unique_annotations(self, collection: str | None = None) -> list[str]:
        """The distinct annotation keys in collections starting with ``collection`` (all when None)."""
        return self._loop.call(self._client.list_unique_annotations, collection)

    def sql_query(self, query: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Run a read-only SQL query on the stream metadata; one dict per row.

        Parameters are ``$1``-style, given in ``params``.
        """
        return self._loop.call(self._client.sql_query, query, params)

    def get_collection_properties(self, collection: str) -> dict[str, Any]:
        """Properties of a collection: ``{'retention': {'remove_older_than': timedelta | None}}``.

        Examples
        --------
        >>> conn.get_collection_properties("bar")  # doctest: +SKIP
        {'retention': {'remove_older_than': datetime.timedelta(days=7)}}
        """
        return self._loop.call(self._client.get_collection_properties, collection)

    def set_collection_retention(
        self, collection: str, override_per_stream: bool = False, remove_older_than: Any = None
    ) -> None:
        """Set the retention policy of a collection.

        See :meth:`AsyncClient.set_collection_retention`.

        Examples
        --------
        >>> conn.set_collection_retention("bar", False, datetime.timedelta(days=7))  # doctest: +SKIP
        """
        self._loop.call(
            self._client.set_collection_retention, collection, override_per_stream, remove_older_than
        )

    def create_device(self, device: dict[str, Any]) -> dict[str, Any]:
        """Create a device; returns it with its new ``id`` (``enabled`` defaults to True).

        See :meth:`AsyncClient.create_device`.
        """
        return self._loop.call(self._client.create_device, device)

    def get_device(self, device_id: int) -> dict[str, Any]:
        """The device with this id (ObjectNotFoundError if there is none)."""
        return self._loop.call(self._client.get_device, device_id)

    def list_devices(self) -> list[dict[str, Any]]:
        """Every device the caller may see."""
        return self._loop.call(self._client.list_devices)

    def update_device(self, device: dict[str, Any], replace: bool = False) -> dict[str, Any]:
        """Update the device whose id is ``device["id"]``; returns the whole updated device.

        See :meth:`AsyncClient.update_device`.
        """
        return self._loop.call(self._client.update_device, device, replace)

    def delete_device(self, device_id: int) -> None:
        """Delete the device with this id."""
        self._loop.call(self._client.delete_device, device_id)

    def create_unit(
        self, name: str, symbol: str, base: float, canonical: str, source_name: list[str]
    ) -> dict[str, Any]:
        """Create a unit definition; returns it with its new ``id``.

        See :meth:`AsyncClient.create_unit`.

        Examples
        --------
        >>> unit_def = {"name": "volts", "symbol": "V", "base": 1.0, "canonical": "volts",
        ...             "source_name": ["VPHM", "voltage", "VOLTS", "VLTGE"]}
        >>> conn.create_unit(**unit_def)  # doctest: +SKIP
        {'id': 6, 'name': 'volts', 'symbol': 'V', 'canonical': 'volts', 'base': 1.0,
         'source_name': ['VPHM', 'voltage', 'VOLTS', 'VLTGE']}
        """
        return self._loop.call(self._client.create_unit, name, symbol, base, canonical, source_name)

    def get_unit(self, unit_id: int) -> dict[str, Any]:
        """The unit with this id (ObjectNotFoundError if there is none)."""
        return self._loop.call(self._client.get_unit, unit_id)

    def list_units(self) -> list[dict[str, Any]]:
        """Every unit definition."""
        return self._loop.call(self._client.list_units)

    def update_unit(self, unit_dict: dict[str, Any]) -> dict[str, Any]:
        """Change the given fields of the unit ``unit_dict["id"]``; returns the whole unit."""
        return self._loop.call(self._client.update_unit, unit_dict)

    def delete_unit(self, unit_id: int) -> None:
        """Delete the unit with this id."""
        self._loop.call(self._client.delete_unit, unit_id)


def _restore_client(client: AsyncClient) -> Client:
    """Unpickle a Client around an (unpickled, not yet connected) AsyncClient."""
    return Client(ClientEventLoop(), client)


def _set_limit(client: AsyncClient, value: int) -> None:
    client.concurrency_limit = value


connect = Client.connect
