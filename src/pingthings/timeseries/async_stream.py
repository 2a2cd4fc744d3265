"""``AsyncStream``: one stream of a BTrDB database, with every call a coroutine.

Results carrying points are pyarrow Tables built straight from the wire codecs' numpy arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from pingthings.timeseries.async_client import AsyncClient


class AsyncStream:
    """A handle on one stream, used from async code.

    Parameters
    ----------
    client
        The :class:`~pingthings.timeseries.async_client.AsyncClient` the stream talks through.
    uuid
        The stream's identifier.
    known_to_exist
        True when the caller knows the stream exists (for example it came from a lookup), so
        no existence round trip is needed.
    collection, tags, annotations, property_version
        Metadata already known to the caller. A stream built by hand without them has no
        metadata until :meth:`refresh_metadata` is awaited.
    retention
        The stream's retention policy when the caller already knows it.
    """

    def __init__(
        self,
        client: AsyncClient,
        uuid: UUID,
        known_to_exist: bool = False,
        collection: str | None = None,
        tags: Mapping[str, str | None] | None = None,
        annotations: Mapping[str, Any] | None = None,
        property_version: int = 0,
        retention: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(uuid, UUID):
            uuid = UUID(str(uuid))
        self._client = client
        self._uuid = uuid
        self._known_to_exist = bool(known_to_exist)
        self._collection = collection
        self._tags: dict[str, str | None] | None = dict(tags) if tags is not None else None
        self._annotations: dict[str, Any] | None = dict(annotations) if annotations is not None else None
        self._property_version = int(property_version)
        self._retention: dict[str, Any] | None = dict(retention) if retention is not None else None

    # ------------------------------------------------------------------ identity and metadata
    @property
    def client(self) -> AsyncClient:
        """The async client this stream talks through."""
        return self._client

    @property
    def uuid(self) -> UUID:
        """The stream's UUID."""
        return self._uuid

    @property
    def known_to_exist(self) -> bool:
        """True once the stream is known to exist on the server."""
        return self._known_to_exist

    @property
    def has_metadata(self) -> bool:
        """True once collection, tags and annotations are known (given or refreshed)."""
        return self._collection is not None and self._tags is not None and self._annotations is not None

    @property
    def collection(self) -> str | None:
        """The stream's collection (None until metadata is known)."""
        return self._collection

    @property
    def name(self) -> str | None:
        """The ``name`` tag (None until metadata is known or when the tag is absent)."""
        return (self._tags or {}).get("name")

    @property
    def unit(self) -> str | None:
        """The ``unit`` tag (None until metadata is known or when the tag is absent)."""
        return (self._tags or {}).get("unit")

    @property
    def property_version(self) -> int:
        """The metadata (property) version last seen; separate from the data version."""
        return self._property_version

    def tags(self) -> dict[str, str | None]:
        """A copy of the stream's tags as last loaded (empty until metadata is known)."""
        return dict(self._tags or {})

    def annotations(self) -> dict[str, Any]:
        """A copy of the stream's annotations as last loaded (empty until metadata is known)."""
        return dict(self._annotations or {})

    def __repr__(self) -> str:
        return f"<AsyncStream {self._uuid} collection={self._collection!r} name={self.name!r}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncStream):
            return self._uuid == other._uuid and self._client is other._client
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._uuid)
