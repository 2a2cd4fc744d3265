"""Control-plane RPCs of v5api.BTrDB: server info, stream lifecycle and metadata queries."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version

from pingthings._proto import v5api
from pingthings.server.errors import BadSQL, FaultInjectionDisabled, StreamNotFound, WrongArgs
from pingthings.server.service.context import is_admin
from pingthings.server.service.convert import blocking, chunks, descriptor_of, opt_map
from pingthings.server.service.state import ServiceState
from pingthings.server.service.visibility import visible_uuid

#: Info reports v5.34: major 5 (the Go client insists) and minor >= 30 (Python enables Arrow RPCs).
MAJOR_VERSION = 5
MINOR_VERSION = 34
#: Descriptors per LookupStreams message (the v4 server used 1000).
LOOKUP_BATCH = 1000
#: Names per ListCollections message.
COLLECTIONS_BATCH = 1000
#: Rows per SQLQuery message.
SQL_BATCH = 1000


def _build() -> str:
    try:
        return f"pingthings-{version('pingthings')}"
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
        return "pingthings"


class ControlHandlers:
    """Handlers for the RPCs that touch metadata but carry no points."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state
        self._build = _build()
        self._info: tuple[str, bytes] | None = None  # (endpoint, encoded reply)

    async def info(self, request: v5api.InfoParams) -> bytes:
        """Report version 5.34 and this server as the single proxy endpoint.

        The reply never changes while the endpoint does not, so it is encoded once (encoding the
        message was a third of the server's CPU for an Info call).
        """
        endpoint = self.state.endpoint
        cached = self._info
        if cached is None or cached[0] != endpoint:
            reply = v5api.InfoResponse(
                major_version=MAJOR_VERSION,
                minor_version=MINOR_VERSION,
                build=self._build,
                proxy=v5api.ProxyInfo(proxy_endpoints=[endpoint]),
            )
            cached = self._info = (endpoint, bytes(reply))
        return cached[1]

    async def create(self, request: v5api.CreateParams) -> v5api.CreateResponse:
        """Create a stream: metadata first (it enforces identity rules), then the engine's tree."""
        uuid = visible_uuid(self.state.meta, request.uuid)
        await blocking(
            self.state.meta.create_stream,
            uuid,
            request.collection,
            opt_map(request.tags),
            opt_map(request.annotations),
        )
        if not await blocking(self.state.engine.exists, uuid):
            await blocking(self.state.engine.create_stream, uuid)
        return v5api.CreateResponse()

    async def stream_info(self, request: v5api.StreamInfoParams) -> v5api.StreamInfoResponse:
        """Return a stream's descriptor and/or data version."""
        uuid = visible_uuid(self.state.meta, request.uuid)
        if request.omit_version and request.omit_descriptor:
            raise WrongArgs("you cannot omit descriptor and version")
        record = await blocking(self.state.meta.get_stream, uuid)
        reply = v5api.StreamInfoResponse()
        if request.omit_descriptor:
            reply.descriptor = v5api.StreamDescriptor(uuid=uuid)
        else:
            reply.descriptor = descriptor_of(record)
        if not request.omit_version:
            reply.version_major = await blocking(self.state.engine.latest_version, uuid)
        return reply

    async def set_stream_annotations(
        self, request: v5api.SetStreamAnnotationsParams
    ) -> v5api.SetStreamAnnotationsResponse:
        """Upsert and remove annotations under a property-version check (0 = unconditional)."""
        uuid = visible_uuid(self.state.meta, request.uuid)
        # A change without a value deletes the key (v4 meaning); the store implements that.
        await blocking(
            self.state.meta.set_annotations,
            uuid,
            request.expected_property_version,
            opt_map(request.changes),
            list(request.removals),
        )
        return v5api.SetStreamAnnotationsResponse()

    async def set_stream_tags(self, request: v5api.SetStreamTagsParams) -> v5api.SetStreamTagsResponse:
        """Change a stream's collection and tags under a property-version check."""
        uuid = visible_uuid(self.state.meta, request.uuid)
        # An empty collection means "unchanged"; the store implements that.
        await blocking(
            self.state.meta.set_tags,
            uuid,
            request.expected_property_version,
            opt_map(request.tags),
            request.collection,
            list(request.remove),
        )
        return v5api.SetStreamTagsResponse()

    async def lookup_streams(
        self, request: v5api.LookupStreamsParams
    ) -> AsyncIterator[v5api.LookupStreamsResponse]:
        """Stream the descriptors matching a collection (exact or prefix) and tag/annotation filters."""
        records = await blocking(
            self.state.meta.lookup_streams,
            request.collection,
            request.is_collection_prefix,
            opt_map(request.tags),
            opt_map(request.annotations),
            is_admin(),
        )
        for batch in chunks(records, LOOKUP_BATCH):
            yield v5api.LookupStreamsResponse(results=[descriptor_of(record) for record in batch])

    async def list_collections(
        self, request: v5api.ListCollectionsParams
    ) -> AsyncIterator[v5api.ListCollectionsResponse]:
        """Stream every collection name that starts with the prefix."""
        names = await blocking(self.state.meta.list_collections, request.prefix, is_admin())
        for batch in chunks(names, COLLECTIONS_BATCH):
            yield v5api.ListCollectionsResponse(collections=list(batch))

    async def get_metadata_usage(self, request: v5api.MetadataUsageParams) -> v5api.MetadataUsageResponse:
        """Count, per tag and annotation key, the streams under the prefix that have it."""
        tags, annotations = await blocking(self.state.meta.metadata_usage, request.prefix, is_admin())
        return v5api.MetadataUsageResponse(
            tags=[v5api.KeyCount(key=key, count=count) for key, count in sorted(tags.items())],
            annotations=[v5api.KeyCount(key=key, count=count) for key, count in sorted(annotations.items())],
        )

    async def obliterate(self, request: v5api.ObliterateParams) -> v5api.ObliterateResponse:
        """Tombstone the stream's metadata, then drop its data."""
        uuid = visible_uuid(self.state.meta, request.uuid)
        await blocking(self.state.meta.obliterate_stream, uuid)
        with contextlib.suppress(StreamNotFound):
            await blocking(self.state.engine.obliterate, uuid)
        return v5api.ObliterateResponse()

    async def flush(self, request: v5api.FlushParams) -> v5api.FlushResponse:
        """Commits are immediate, so Flush only reports the latest version."""
        uuid = visible_uuid(self.state.meta, request.uuid)
        return v5api.FlushResponse(version_major=await blocking(self.state.engine.flush, uuid))

    async def fault_inject(self, request: v5api.FaultInjectParams) -> v5api.FaultInjectResponse:
        """Fault injection is never enabled on this server (424)."""
        raise FaultInjectionDisabled("fault injection is disabled on this server")

    async def sql_query(self, request: v5api.SqlQueryParams) -> AsyncIterator[v5api.SqlQueryResponse]:
        """Run a read-only metadata query; each row travels as one JSON object."""
        limit = self.state.max_sql_bytes
        if len(request.query) > limit or len(request.query.encode()) > limit:
            raise BadSQL(
                f"the SQL text is longer than the server's limit of {limit} bytes (max_sql_bytes); "
                "pass values as $1, $2, ... parameters instead of writing them into the query"
            )
        rows = await blocking(self.state.meta.sql_query, request.query, list(request.params), is_admin())
        encoded = [json.dumps(row, default=str).encode() for row in rows]
        for batch in chunks(encoded, SQL_BATCH):
            yield v5api.SqlQueryResponse(sql_query_row=list(batch))
