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

from pingthings.timeseries._call_policy import TimeoutScope
from pingthings.timeseries.async_client import AsyncClient
from pingthings.timeseries.async_stream import AsyncStream
from pingthings.timeseries.event_loop import ClientEventLoop
from pingthings.timeseries.exceptions import InvalidOperation
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
        **options: Any,
    ) -> Client:
        """Connect to a server and return a synchronous client.

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
        **options
            ``tls``, ``ca_bundle``, ``connect_timeout``, ``timeout``, ``retries``, ``retry_budget``,
            ``max_waiting``, as for
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
            client = loop.call(AsyncClient.connect, profile, endpoint, apikey, concurrency_limit, **options)
        except BaseException:
            loop.close()
            raise
        return Client(loop, client)

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
        raise InvalidOperation(
            "a Client holds a live connection and an event loop thread and cannot be pickled; "
            "call pingthings.timeseries.connect() in each process"
        )

    def timeout(self, seconds: float | None) -> TimeoutScope:
        """A block in which every call of this client, made from this thread, gets ``seconds`` as its
        timeout (see :meth:`AsyncClient.timeout`).

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
        """Server and proxy information (see :meth:`AsyncClient.info`)."""
        return self._loop.call(self._client.info)

    def create(
        self,
        uuid: UUID | str,
        collection: str,
        tags: dict[str, str],
        annotations: dict[str, Any] | None = None,
    ) -> Stream:
        """Create a new stream (see :meth:`AsyncClient.create`)."""
        return self._wrap(self._loop.call(self._client.create, uuid, collection, tags, annotations))

    def stream_from_uuid(self, uuid: UUID | str) -> Stream:
        """The stream with this UUID, without a round trip (TypeError for an invalid UUID)."""
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
        streams = self._loop.call(
            self._client._lookup_streams, collection, is_collection_prefix, tags, annotations
        )
        return self._wrap_all(streams)

    def streamset_from_uuids(self, uuids: list[UUID | str], fetch_metadata: bool = True) -> StreamSet:
        """A :class:`StreamSet` of these UUIDs (see :meth:`AsyncClient.streamset_from_uuids`)."""
        return self._wrap_all(self._loop.call(self._client._streams_from_uuids, uuids, fetch_metadata))

    def list_collections(self, prefix: str | None = None) -> list[str]:
        """Collection names starting with ``prefix`` (all when None).

        Examples
        --------
        >>> conn.list_collections(prefix="foo")  # doctest: +SKIP
        ['foo', 'foo/bar']
        """
        return self._loop.call(self._client.list_collections, prefix)

    def sql_query(self, query: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Read-only SQL over the stream metadata, ``$1``-style parameters; one dict per row."""
        return self._loop.call(self._client.sql_query, query, params)

    def get_collection_properties(self, collection: str) -> dict[str, Any]:
        """Properties of a collection.

        Examples
        --------
        >>> conn.get_collection_properties("bar")  # doctest: +SKIP
        {'retention': {'remove_older_than': datetime.timedelta(days=7)}}
        """
        return self._loop.call(self._client.get_collection_properties, collection)

    def set_collection_retention(
        self, collection: str, override_per_stream: bool = False, remove_older_than: Any = None
    ) -> None:
        """Set the retention policy of a collection (see :meth:`AsyncClient.set_collection_retention`).

        Examples
        --------
        >>> conn.set_collection_retention("bar", False, datetime.timedelta(days=7))  # doctest: +SKIP
        """
        self._loop.call(
            self._client.set_collection_retention, collection, override_per_stream, remove_older_than
        )

    def create_device(self, device: dict[str, Any]) -> dict[str, Any]:
        """Create a device; returns it with its ``id`` (see :meth:`AsyncClient.create_device`)."""
        return self._loop.call(self._client.create_device, device)

    def get_device(self, device_id: int) -> dict[str, Any]:
        """The device with this id."""
        return self._loop.call(self._client.get_device, device_id)

    def list_devices(self) -> list[dict[str, Any]]:
        """Every device the caller may see."""
        return self._loop.call(self._client.list_devices)

    def update_device(self, device: dict[str, Any], replace: bool = False) -> dict[str, Any]:
        """Update the device ``device["id"]`` (see :meth:`AsyncClient.update_device`)."""
        return self._loop.call(self._client.update_device, device, replace)

    def delete_device(self, device_id: int) -> None:
        """Delete the device with this id."""
        self._loop.call(self._client.delete_device, device_id)

    def create_unit(
        self, name: str, symbol: str, base: float, canonical: str, source_name: list[str]
    ) -> dict[str, Any]:
        """Create a unit definition (see :meth:`AsyncClient.create_unit`).

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
        """The unit with this id."""
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


def _set_limit(client: AsyncClient, value: int) -> None:
    client.concurrency_limit = value


connect = Client.connect
