"""Plain value objects handed out by the metadata store."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StreamRecord:
    """The metadata of one live stream.

    Attributes
    ----------
    uuid
        The stream's 16-byte identifier.
    collection
        The collection the stream belongs to.
    tags
        Tag key to value; a value may be ``None`` (a NULL tag set by a Go client).
    annotations
        Annotation key to value; values are opaque strings (or ``None``).
    property_version
        Starts at 1 and rises by exactly 1 on each successful tag or annotation change.
    created_at, updated_at
        ISO-8601 UTC timestamps of creation and of the last metadata change.
    """

    uuid: bytes
    collection: str
    tags: dict[str, str | None]
    annotations: dict[str, str | None]
    property_version: int
    created_at: str = ""
    updated_at: str = ""

    @property
    def name(self) -> str:
        """The stream's ``name`` tag (always present on a stored stream)."""
        return self.tags.get("name") or ""


@dataclass(frozen=True)
class RetentionPolicy:
    """A retention policy set on a collection or a stream.

    Attributes
    ----------
    remove_older_than_ns
        Data older than ``now - remove_older_than_ns`` is deleted; ``None`` means trimming is off.
    override_per_stream
        On a collection: its policy beats the policies set on its streams (and on the streams of
        its sub-collections). Kept but meaningless on a stream.
    """

    remove_older_than_ns: int | None
    override_per_stream: bool = False


@dataclass(frozen=True)
class CollectionProperties:
    """What :meth:`MetadataStore.get_collection_properties` returns.

    Attributes
    ----------
    retention
        The policy set on exactly this collection, or ``None`` when it has none.
    """

    retention: RetentionPolicy | None = None
