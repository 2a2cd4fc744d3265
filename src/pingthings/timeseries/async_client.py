"""``AsyncClient``: the connection to a BTrDB v5 / PredictiveGrid server, every call a coroutine.

This is where the client's logic lives; :class:`pingthings.timeseries.client.Client` only runs these
coroutines on its own event loop. It works under asyncio and trio (anyio), and one client must be
used from the event loop (and thread) it was connected in.

The v5 RPCs go to the ``v5api.BTrDB`` service; devices, units and collection retention go to the
``pingthings.platform.v1.Platform`` service that the embedded server (and a PredictiveGrid platform
that offers it) serves next to it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any
from uuid import UUID

import anyio

import pingthings
from pingthings._proto import v5api
from pingthings.timeseries._call_policy import CallSettings, TimeoutScope
from pingthings.timeseries._collections import list_collections as list_all_collections
from pingthings.timeseries._fanout import gather
from pingthings.timeseries._insert_batches import batch_size_for_version, check_batch_size
from pingthings.timeseries._lazy_connect import InfoOnFirstConnectChannel
from pingthings.timeseries._metadata import (
    annotation_pairs,
    decode_annotation,
    encode_annotation,
    tag_pairs,
)
from pingthings.timeseries._platform_api import PlatformCalls
from pingthings.timeseries._raw_annotations import LOOKUP_RESULTS, restore_in_response
from pingthings.timeseries._rpc import (
    call_stream,
    call_unary,
    call_unary_payload,
    collect_stream,
    decode_checked,
    translate_channel_error,
)
from pingthings.timeseries.async_stream import AsyncStream
from pingthings.timeseries.async_streamset import AsyncStreamSet
from pingthings.timeseries.call_config import resolve_call_settings
from pingthings.timeseries.config import (
    ConnectionSettings,
    Endpoint,
    parse_concurrency_limit,
    parse_endpoint,
    resolve_settings,
)
from pingthings.timeseries.exceptions import (
    ClientClosedError,
    ConnectionError,
    PermissionDeniedError,
    PingThingsError,
    raise_for_status,
)
from pingthings.timeseries.transport import Channel, ChannelError, GrpcStatusError, client_ssl_context
from pingthings.wire.info_reply import InfoReply, decode_info
from pingthings.wire.protowire import WireFormatError

if TYPE_CHECKING:
    from typing import Self

ARROW_MIN_MINOR_VERSION = 30
"""Info minor version from which a v5 server offers the Arrow RPCs."""

RESTORED_CONNECT_TIMEOUT = 10.0
"""Seconds an unpickled client allows its first connection (``connect``'s default)."""

INFO_TIMEOUT = 30.0
"""Seconds the Info call made by :meth:`AsyncClient.connect` may take."""


def to_uuid(value: Any, what: str = "uuid") -> UUID:
    """A :class:`uuid.UUID` from a UUID, its string form or its 16 bytes.

    Raises
    ------
    TypeError
        When ``value`` is none of those (as the documented API requires).
    """
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            raise TypeError(f"{what} {value!r} is not a valid UUID") from None
    if isinstance(value, bytes | bytearray) and len(value) == 16:
        return UUID(bytes=bytes(value))
    raise TypeError(f"{what} must be a UUID or a UUID string, got {type(value).__name__}")


def _check_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    return value


def _check_mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a dict, got {type(value).__name__}")
    return value


def _lookup_annotation_pairs(annotations: Mapping[str, Any]) -> list[v5api.KeyOptValue]:
    """Annotation filters: a None value matches any value (the key must exist)."""
    out = []
    for key, value in annotations.items():
        if not isinstance(key, str):
            raise TypeError(f"annotation keys must be str, got {type(key).__name__}")
        val = None if value is None else v5api.OptValue(value=encode_annotation(value))
        out.append(v5api.KeyOptValue(key=key, val=val))
    return out


def _sql_param(value: Any, index: int) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"sql_query parameter ${index} must be a str (or int, float, UUID), got {value!r}")
    return str(value)


class AsyncClient(PlatformCalls):
    """The async connection to a server. Create it with ``await AsyncClient.connect(...)``.

    Parameters
    ----------
    channel
        The gRPC channel to the server.
    settings
        The resolved connection settings.
    info
        The server's Info answer (as :meth:`info` returns it), fetched when connecting.
    call_settings
        Timeout, retries and limiter queue bound of every call (default: the documented defaults).

    Notes
    -----
    ``concurrency_limit`` bounds the calls in flight at once (one anyio ``CapacityLimiter`` per
    client): stream set operations fan out up to that many requests.

    The platform extension calls (collection retention, devices, units) are defined in the module
    ``pingthings.timeseries._platform_api``; a server without that service answers them with
    ``NotImplementedByServerError`` naming the capability.
    """

    def __init__(
        self,
        channel: Channel,
        settings: ConnectionSettings,
        info: Mapping[str, Any] | None,
        insert_batch_size: int | None = None,
        call_settings: CallSettings | None = None,
    ) -> None:
        self._channel = channel
        self._call_settings = call_settings if call_settings is not None else CallSettings()
        self._settings = settings
        self._endpoint = str(settings.endpoint)
        self._limiter = anyio.CapacityLimiter(settings.concurrency_limit)
        self._closed = False
        self._info: dict[str, Any] | None = None
        self._arrow_enabled = False
        #: The batch size given to connect (or set later), which the server's version never overrides.
        self._requested_batch_size = (
            None if insert_batch_size is None else check_batch_size(insert_batch_size)
        )
        self._insert_batch_size = self._requested_batch_size or batch_size_for_version(5)
        self._proxy_endpoints: list[str] = []
        self._proxy_channels: dict[str, Channel] = {}
        self._connect_timeout = 10.0
        if info is not None:
            self._learn_info(info)

    def _learn_info(self, info: Mapping[str, Any]) -> None:
        """Keep the server's Info answer: its version says whether the Arrow RPCs exist and how many
        points an Insert may carry; its proxy endpoints are where a 405 sends calls."""
        self._info = dict(info)
        major, minor = int(info["major_version"]), int(info["minor_version"])
        self._arrow_enabled = (major, minor) >= (5, ARROW_MIN_MINOR_VERSION)
        if self._requested_batch_size is None:
            self._insert_batch_size = batch_size_for_version(major)
        listed = info.get("proxy", {}).get("proxy_endpoints", [])
        self._proxy_endpoints = [str(e) for e in listed if str(e) != self._endpoint]

    # ---------------------------------------------------------------------------------- connection
    @staticmethod
    async def connect(
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
    ) -> AsyncClient:
        """Connect to a server and check it answers (one Info call), or, with ``lazy=True``, later.

        Parameters
        ----------
        profile
            A profile of ``${HOME}/.predictivegrid/credentials.yaml`` (default ``$BTRDB_PROFILE``,
            else ``default`` when it exists).
        endpoint
            ``host:port`` of the server (default ``$BTRDB_ENDPOINTS``); ``[v6]:port`` for IPv6.
        apikey
            The API key (default ``$BTRDB_API_KEY``).
        concurrency_limit
            Calls allowed in flight at once (default ``$PINGTHINGS_CONCURRENCY_LIMIT``, else 32).
        tls
            Force TLS on or off (default: on for port 4411, or as an ``https://`` endpoint says).
        ca_bundle
            PEM file of CA certificates to trust (default ``$BTRDB_CA_BUNDLE``, else the system's).
        connect_timeout
            Seconds to wait for the TCP/TLS connection.
        compression
            ``"gzip"`` compresses every request message (worth it on slow links only; default: the
            profile's ``compression`` key, else ``$PINGTHINGS_COMPRESSION``, else off). Replies
            compressed by the server (gzip or deflate) are read whatever this says.
        insert_batch_size
            Points per Insert call (default: 25,000 for a BTrDB 4 server, 50,000 for v5, from the
            server's Info); :meth:`AsyncStream.insert` can also set it per call.
        lazy
            Return at once, without contacting the server (for an application that must start
            while the server may be down). The first call connects; while the server is
            unreachable each call fails with :class:`ConnectionError`, and calls succeed again as
            soon as it is back. A wrong API key then shows as :class:`PermissionDeniedError` on
            the first call instead of here.
        timeout
            Seconds each call may take (default ``$PINGTHINGS_TIMEOUT``, the profile's ``timeout``,
            else 60): a unary call in total, time queued for the concurrency limiter included; a
            streaming read per message, not in total. ``math.inf`` turns the limit off. Narrow or
            widen it for a block with :meth:`timeout`.
        retries
            Times a failed idempotent call is tried again after a connection failure, GOAWAY or
            UNAVAILABLE (default ``$PINGTHINGS_RETRIES``, the profile's ``retries``, else 3).
        retry_budget
            Seconds after a call started during which a retry may still begin (default
            ``$PINGTHINGS_RETRY_BUDGET``, the profile's ``retry_budget``, else 10).
        max_waiting
            Calls that may wait for the concurrency limiter at once; further calls fail at once
            with OverloadedError (default ``$PINGTHINGS_MAX_WAITING``, the profile's
            ``max_waiting``, else 1000).

        Raises
        ------
        CredentialsError
            No endpoint could be found, or the named profile / credentials file is missing.
        ConnectionError
            The server could not be reached or did not answer Info (not with ``lazy=True``).
        PermissionDeniedError
            The server refused the API key (not with ``lazy=True``).

        Examples
        --------
        >>> client = await AsyncClient.connect(endpoint="127.0.0.1:4410")  # doctest: +SKIP
        >>> client = await AsyncClient.connect(endpoint="127.0.0.1:4410", lazy=True)  # doctest: +SKIP
        """
        settings = resolve_settings(
            profile,
            endpoint,
            apikey,
            concurrency_limit,
            tls=tls,
            ca_bundle=ca_bundle,
            compression=compression,
        )
        if insert_batch_size is not None:
            check_batch_size(insert_batch_size)
        call_settings = resolve_call_settings(
            profile, timeout=timeout, retries=retries, retry_budget=retry_budget, max_waiting=max_waiting
        )
        return await AsyncClient.connect_with(
            settings,
            connect_timeout=connect_timeout,
            insert_batch_size=insert_batch_size,
            lazy=lazy,
            call_settings=call_settings,
        )

    @staticmethod
    async def connect_with(
        settings: ConnectionSettings,
        *,
        connect_timeout: float = 10.0,
        insert_batch_size: int | None = None,
        lazy: bool = False,
        call_settings: CallSettings | None = None,
    ) -> AsyncClient:
        """Connect with already resolved :class:`~pingthings.timeseries.config.ConnectionSettings`
        (and, optionally, a resolved call policy).

        ``insert_batch_size`` and ``lazy`` are as for :meth:`connect`.
        """
        endpoint = str(settings.endpoint)
        if lazy:
            return _lazy_client(settings, connect_timeout, insert_batch_size, call_settings)
        channel = _channel_for(settings, connect_timeout)
        try:
            limit = INFO_TIMEOUT if call_settings is None else min(INFO_TIMEOUT, call_settings.timeout)
            raw = await channel.unary("/v5api.BTrDB/Info", b"", timeout=limit)
            response = decode_info(raw)
        except WireFormatError as exc:
            await _close_quietly(channel)
            raise ConnectionError(
                f"the server at {endpoint} answered Info with a message that is not an InfoResponse ({exc})"
            ) from None
        except ChannelError as exc:
            await _close_quietly(channel)
            error = translate_channel_error(exc, endpoint, "/v5api.BTrDB/Info")
            if isinstance(error, PermissionDeniedError):
                raise error from exc
            # Anything else (refused, TLS failure, not a BTrDB server, ...) is a failed connection.
            raise ConnectionError(
                f"could not connect to the server at {endpoint} ({settings.source}"
                f"{', TLS' if settings.tls else ', plaintext'}): {_without_endpoint(exc)}"
            ) from exc
        except BaseException:
            await _close_quietly(channel)
            raise
        if response.stat_code:
            await _close_quietly(channel)
            raise ConnectionError(
                f"the server at {endpoint} answered Info with [{response.stat_code}] {response.stat_msg}"
            )
        client = AsyncClient(channel, settings, _info_to_dict(response), insert_batch_size, call_settings)
        client._connect_timeout = connect_timeout
        return client

    async def aclose(self) -> None:
        """Close the connection. Idempotent; calls made afterwards raise ClientClosedError."""
        if self._closed:
            return
        self._closed = True
        proxies, self._proxy_channels = list(self._proxy_channels.values()), {}
        for proxy in proxies:
            await _close_quietly(proxy)
        await self._channel.aclose()

    async def close(self) -> None:
        """Same as :meth:`aclose`."""
        await self.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<AsyncClient {self._endpoint} {state}>"

    def __reduce__(self) -> Any:
        """Pickle to the connection settings (API key included), the call policy and the Info answer.

        Unpickling builds a client that connects on its first call, in whatever event loop the
        receiving process uses; the live connection itself is never pickled.
        """
        return (
            _restore_async_client,
            (self._settings, self._info, self._requested_batch_size, self._call_settings),
        )

    @property
    def settings(self) -> ConnectionSettings:
        """The resolved connection settings (what pickling carries to other processes)."""
        return self._settings

    # ------------------------------------------------------------------------- plumbing (for _rpc)
    @property
    def channel(self) -> Channel:
        """The gRPC channel (used by :mod:`pingthings.timeseries._rpc`)."""
        return self._channel

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        """The limiter every call holds a token of."""
        return self._limiter

    @property
    def endpoint(self) -> str:
        """``host:port`` of the server."""
        return self._endpoint

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` has run."""
        return self._closed

    @property
    def arrow_enabled(self) -> bool:
        """True when the server offers the Arrow RPCs (Info version 5.30 or later)."""
        return self._arrow_enabled

    @property
    def insert_batch_size(self) -> int:
        """Points sent per Insert call.

        Chosen from the server's Info (25,000 for BTrDB 4, 50,000 for v5) unless given to
        ``connect``; lowered automatically when the server refuses a batch as too big (414).
        """
        return self._insert_batch_size

    @insert_batch_size.setter
    def insert_batch_size(self, value: int) -> None:
        self._insert_batch_size = self._requested_batch_size = check_batch_size(value)

    @property
    def proxy_endpoints(self) -> list[str]:
        """The proxy endpoints Info listed (other than the one connected to), tried after a 405."""
        return list(self._proxy_endpoints)

    def proxy_channel(self, endpoint: str) -> Channel:
        """The channel to one of :attr:`proxy_endpoints`, opened on first use (same TLS, key and
        compression settings as the client's own).

        Raises
        ------
        ClientClosedError
            When the client is closed.
        """
        if self._closed:
            raise ClientClosedError(f"the client for {self._endpoint} is closed; connect again")
        channel = self._proxy_channels.get(endpoint)
        if channel is None:
            parsed, _ = parse_endpoint(endpoint, what="proxy endpoint from Info")
            channel = _channel_for(self._settings, self._connect_timeout, parsed)
            self._proxy_channels[endpoint] = channel
        return channel

    @property
    def call_settings(self) -> CallSettings:
        """Timeout, retries and limiter queue bound of this client's calls."""
        return self._call_settings

    def timeout(self, seconds: float | None) -> TimeoutScope:
        """A block in which every call of this client gets ``seconds`` as its timeout.

        A plain context manager, usable under asyncio and trio (and by tasks started inside the block,
        such as a stream set's fan-out). Scopes nest; the innermost wins. ``None`` lifts the limit.
        Each call is bounded on its own; the block as a whole is not.

        Examples
        --------
        >>> with client.timeout(5):  # doctest: +SKIP
        ...     info = await client.info()
        """
        return TimeoutScope(self, seconds)

    @property
    def concurrency_limit(self) -> int:
        """The maximum number of calls in flight at once.

        Setting it takes effect at once (waiting calls start when it grows) and overrides
        ``$PINGTHINGS_CONCURRENCY_LIMIT``. Set it from the client's event loop.
        """
        return int(self._limiter.total_tokens)

    @concurrency_limit.setter
    def concurrency_limit(self, value: int) -> None:
        self._limiter.total_tokens = parse_concurrency_limit(value)

    # ------------------------------------------------------------------------------------ server
    async def info(self) -> dict[str, Any]:
        """Server and proxy information.

        Returns
        -------
        dict
            ``{'major_version': int, 'minor_version': int, 'build': str,
            'proxy': {'proxy_endpoints': [str, ...]}}``
        """
        payload = await call_unary_payload(self, "Info", b"", v5api.InfoResponse)
        response = decode_info(payload)
        if response.stat_code:
            raise_for_status(response.stat_code, response.stat_msg)
        return _info_to_dict(response)

    # ----------------------------------------------------------------------------------- streams
    async def create(
        self,
        uuid: UUID | str,
        collection: str,
        tags: dict[str, str],
        annotations: dict[str, Any] | None = None,
    ) -> AsyncStream:
        """Create a new stream.

        Parameters
        ----------
        uuid
            The new stream's UUID.
        collection
            Its collection.
        tags
            Its tags; ``name`` is required, and no two streams may share collection and name.
        annotations
            Its annotations (``str`` values are stored as is, anything else as JSON).

        Returns
        -------
        AsyncStream
            The new stream, with its metadata filled in.
        """
        stream_id = to_uuid(uuid)
        _check_str(collection, "collection")
        tags = dict(_check_mapping(tags, "tags"))
        annotations = dict(_check_mapping(annotations, "annotations")) if annotations is not None else {}
        params = v5api.CreateParams(
            uuid=stream_id.bytes,
            collection=collection,
            tags=tag_pairs(tags),
            annotations=annotation_pairs(annotations),
        )
        await call_unary(self, "Create", params, v5api.CreateResponse)
        stored = {key: decode_annotation(encode_annotation(value)) for key, value in annotations.items()}
        return AsyncStream(
            self,
            stream_id,
            known_to_exist=True,
            collection=collection,
            tags=tags,
            annotations=stored,
            property_version=1,
        )

    async def stream_from_uuid(self, uuid: UUID | str) -> AsyncStream:
        """A handle on the stream with this UUID (no round trip; the stream may not exist).

        Use ``await stream.exists()`` to check, or ``await stream.refresh_metadata()`` to load
        its metadata.

        Raises
        ------
        TypeError
            If ``uuid`` is not a valid UUID.
        """
        return self.stream_handle(uuid)

    def stream_handle(self, uuid: UUID | str) -> AsyncStream:
        """:meth:`stream_from_uuid` without the coroutine (for synchronous callers)."""
        return AsyncStream(self, to_uuid(uuid))

    async def _lookup_streams(
        self,
        collection: str | None,
        is_collection_prefix: bool,
        tags: Mapping[str, str | None] | None,
        annotations: Mapping[str, Any] | None,
    ) -> list[AsyncStream]:
        collection = "" if collection is None else _check_str(collection, "collection")
        if not isinstance(is_collection_prefix, bool):
            raise TypeError(
                f"is_collection_prefix must be True or False, got {type(is_collection_prefix).__name__} "
                f"{is_collection_prefix!r} (search several collections with one call each)"
            )
        params = v5api.LookupStreamsParams(
            collection=collection,
            is_collection_prefix=bool(is_collection_prefix),
            tags=tag_pairs(_check_mapping(tags, "tags")) if tags else [],
            annotations=_lookup_annotation_pairs(_check_mapping(annotations, "annotations"))
            if annotations
            else [],
        )
        streams: list[AsyncStream] = []
        async with call_stream(self, "LookupStreams", params) as messages:
            async for payload in messages:
                response = decode_checked(payload, v5api.LookupStreamsResponse)
                # Annotation values a v4 server stored as bare text are read from the bytes.
                restore_in_response(response, payload, LOOKUP_RESULTS)
                streams.extend(AsyncStream.from_descriptor(self, d) for d in response.results)
        return streams

    async def streams_in_collection(
        self,
        collection: str = "",
        is_collection_prefix: bool = True,
        tags: dict[str, str] | None = None,
        annotations: dict[str, Any] | None = None,
    ) -> AsyncStreamSet:
        """Find streams by collection, tags and annotations.

        Parameters
        ----------
        collection
            Collection to search (case sensitive); ``""`` searches every collection.
        is_collection_prefix
            True: ``collection`` is a plain string prefix; False: exact match.
        tags, annotations
            Every given key must match; a None value matches any value of that key.

        Returns
        -------
        AsyncStreamSet
            The matching streams, with their metadata.
        """
        streams = await self._lookup_streams(collection, is_collection_prefix, tags, annotations)
        return AsyncStreamSet(streams)

    async def _streams_from_uuids(
        self, uuids: Iterable[UUID | str], fetch_metadata: bool
    ) -> list[AsyncStream]:
        if isinstance(uuids, str | UUID | bytes):
            raise TypeError("uuids must be a list of UUIDs, not a single one")
        streams = [AsyncStream(self, to_uuid(u)) for u in uuids]
        if fetch_metadata:
            await gather(
                [(s.refresh_metadata,) for s in streams],
                labels=[str(s.uuid) for s in streams],
                workers=self.concurrency_limit,
            )
        return streams

    async def streamset_from_uuids(
        self, uuids: list[UUID | str], fetch_metadata: bool = True
    ) -> AsyncStreamSet:
        """An :class:`AsyncStreamSet` of the streams with these UUIDs.

        Parameters
        ----------
        uuids
            The stream identifiers (UUIDs or strings).
        fetch_metadata
            Fetch every stream's metadata (concurrently, within ``concurrency_limit``); unknown
            UUIDs then raise StreamNotFoundError. With False no round trip is made and metadata
            such as collection, name and tags stays unknown.
        """
        return AsyncStreamSet(await self._streams_from_uuids(uuids, fetch_metadata))

    async def list_collections(self, prefix: str | None = None) -> list[str]:
        """Collection names starting with ``prefix`` (all when None), sorted.

        Works with v5 servers (one streamed answer) and BTrDB 4 servers (pages of at most 10,000 names,
        asked for one after another).
        """
        prefix = "" if prefix is None else _check_str(prefix, "prefix")
        return await list_all_collections(self, prefix)

    async def sql_query(self, query: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Run a read-only SQL query on the stream metadata; one dict per row.

        Parameters
        ----------
        query
            A SELECT over the ``streams`` table; use ``$1``, ``$2`` ... for values.
        params
            The values for ``$1``, ``$2`` ... (bound by the server, never interpolated).
        """
        _check_str(query, "query")
        if params is not None and (isinstance(params, str | bytes) or not isinstance(params, list | tuple)):
            raise TypeError(f"params must be a list, got {type(params).__name__}")
        wire_params = [_sql_param(p, i) for i, p in enumerate(params or [], start=1)]
        request = v5api.SqlQueryParams(query=query, params=wire_params)
        responses = await collect_stream(self, "SQLQuery", request, v5api.SqlQueryResponse)
        rows: list[dict[str, Any]] = []
        for response in responses:
            for row in response.sql_query_row:
                try:
                    rows.append(json.loads(row))
                except ValueError as exc:
                    raise PingThingsError(
                        f"the server sent a SQL row that is not JSON: {row[:80]!r}"
                    ) from exc
        return rows

    # -------------------------------------------------------------------------- collections
    async def collection_metadata(self, prefix: str = "") -> tuple[dict[str, int], dict[str, int]]:
        """How many streams under a collection prefix use each tag and annotation key.

        Parameters
        ----------
        prefix
            Collection prefix (``""``: every collection).

        Returns
        -------
        tuple
            ``({tag: count}, {annotation key: count})``, as btrdb-python's ``collection_metadata``.
        """
        params = v5api.MetadataUsageParams(prefix=_check_str(prefix, "prefix"))
        response = await call_unary(self, "GetMetadataUsage", params, v5api.MetadataUsageResponse)
        tags = {kc.key: int(kc.count) for kc in response.tags}
        annotations = {kc.key: int(kc.count) for kc in response.annotations}
        return tags, annotations

    async def _distinct(self, column: str, expression: str, collection: str | None) -> list[str]:
        """Distinct values of one metadata column, over collections starting with ``collection``."""
        query = f"select distinct({expression}) as {column} from streams"
        params: list[Any] = []
        if collection is not None:
            prefix = _check_str(collection, "collection")
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query += " where collection like $1 escape '\\'"
            params.append(escaped + "%")
        rows = await self.sql_query(query, params)
        return sorted({row[column] for row in rows if row.get(column) is not None})

    async def list_unique_names(self, collection: str | None = None) -> list[str]:
        """The distinct stream names in collections starting with ``collection`` (all when None)."""
        return await self._distinct("name", "name", collection)

    async def list_unique_units(self, collection: str | None = None) -> list[str]:
        """The distinct units in collections starting with ``collection`` (all when None)."""
        return await self._distinct("unit", "unit", collection)

    async def list_unique_annotations(self, collection: str | None = None) -> list[str]:
        """The distinct annotation keys in collections starting with ``collection`` (all when None)."""
        return await self._distinct("annotations", "skeys(annotations)", collection)


def _channel_for(
    settings: ConnectionSettings,
    connect_timeout: float,
    endpoint: Endpoint | None = None,
    *,
    factory: Callable[..., Channel] = Channel,
    **extra: Any,
) -> Channel:
    """A (not yet connected) channel to ``endpoint`` (default: the settings' own) with the settings'
    TLS, API key, compression and client name metadata; ``factory(..., **extra)`` builds it."""
    target = settings.endpoint if endpoint is None else endpoint
    metadata: list[tuple[str, str]] = [("x-api-client", f"pingthings-{pingthings.__version__}")]
    if settings.apikey:
        metadata.insert(0, ("authorization", f"Bearer {settings.apikey}"))
    try:
        ssl_context = client_ssl_context(settings.ca_bundle) if settings.tls else None
    except (OSError, ValueError) as exc:
        raise ConnectionError(f"cannot set up TLS for {target}: {exc}") from exc
    return factory(
        target.host,
        target.port,
        ssl_context=ssl_context,
        metadata=tuple(metadata),
        connect_timeout=connect_timeout,
        compression=settings.compression,
        **extra,
    )


def _restore_async_client(
    settings: ConnectionSettings,
    info: Mapping[str, Any] | None,
    insert_batch_size: int | None = None,
    call_settings: CallSettings | None = None,
) -> AsyncClient:
    """Unpickle an AsyncClient: same settings, a fresh channel that connects on the first call.

    A client pickled before it ever reached its server (``lazy=True``) learns Info in the worker.
    """
    if info is None:
        return _lazy_client(settings, RESTORED_CONNECT_TIMEOUT, insert_batch_size, call_settings)
    channel = _channel_for(settings, RESTORED_CONNECT_TIMEOUT)
    return AsyncClient(channel, settings, info, insert_batch_size, call_settings)


def _lazy_client(
    settings: ConnectionSettings,
    connect_timeout: float,
    insert_batch_size: int | None = None,
    call_settings: CallSettings | None = None,
) -> AsyncClient:
    """A client that has not talked to the server yet; it learns Info on its first connection."""
    client: AsyncClient | None = None

    def learn(response: InfoReply) -> None:
        if client is not None:
            client._learn_info(_info_to_dict(response))

    channel = _channel_for(
        settings,
        connect_timeout,
        factory=InfoOnFirstConnectChannel,
        on_info=learn,
        info_timeout=INFO_TIMEOUT,
    )
    client = AsyncClient(channel, settings, None, insert_batch_size, call_settings)
    client._connect_timeout = connect_timeout
    return client


def _without_endpoint(exc: ChannelError) -> str:
    """A channel error's text without its endpoint (the caller names it already)."""
    if isinstance(exc, GrpcStatusError):
        text = f"{exc.status_name} from {exc.method}" if exc.method else exc.status_name
        return f"{text}: {exc.message}" if exc.message else text
    return exc.message


async def _close_quietly(channel: Channel) -> None:
    with anyio.CancelScope(shield=True):
        with contextlib.suppress(ChannelError, OSError):
            await channel.aclose()


def _info_to_dict(response: InfoReply) -> dict[str, Any]:
    return {
        "major_version": response.major_version,
        "minor_version": response.minor_version,
        "build": response.build,
        "proxy": {"proxy_endpoints": response.proxy_endpoints},
    }


__all__ = ["AsyncClient", "AsyncStream", "AsyncStreamSet", "to_uuid"]
