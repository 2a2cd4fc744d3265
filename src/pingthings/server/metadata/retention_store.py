"""Retention policies of collections and streams, and the policy each stream is held to.

A policy says "remove data older than ``now - remove_older_than_ns``" (``None``: trimming off).

* A collection's policy also covers its sub-collections: ``a`` covers ``a/b`` and ``a/b/c``
  (the ancestors of a collection are its prefixes that end just before a ``/``). Among the
  collection and its ancestors, the nearest one with a policy is the *collection policy*.
* The *effective* policy of a stream is, in order: the nearest collection policy that has
  ``override_per_stream``; else the stream's own policy; else the collection policy; else none.

``get_collection_properties`` of a collection that has neither a live stream nor a policy raises
ObjectNotFound (445); a known collection without a policy reports ``retention=None``.
"""

from __future__ import annotations

from collections.abc import Mapping

from pingthings.server.errors import ObjectNotFound, StreamNotFound, WrongArgs
from pingthings.server.metadata.database import StoreCore
from pingthings.server.metadata.records import CollectionProperties, RetentionPolicy
from pingthings.server.metadata.validation import check_collection, check_uuid


def _check_policy(remove_older_than_ns: int | None, override_per_stream: bool) -> RetentionPolicy:
    if remove_older_than_ns is not None and (
        isinstance(remove_older_than_ns, bool)
        or not isinstance(remove_older_than_ns, int)
        or remove_older_than_ns <= 0
    ):
        raise WrongArgs(f"remove_older_than must be a positive number of ns, not {remove_older_than_ns!r}")
    if not isinstance(override_per_stream, bool):
        raise WrongArgs("override_per_stream must be true or false")
    return RetentionPolicy(remove_older_than_ns, override_per_stream)


def collection_ancestry(collection: str) -> list[str]:
    """The collection and its ancestors, nearest first: ``a/b/c`` → ``[a/b/c, a/b, a]``."""
    chain = [collection]
    for index in range(len(collection) - 1, 0, -1):
        if collection[index] == "/":
            chain.append(collection[:index])
    return chain


def effective_policy(
    collection: str, own: RetentionPolicy | None, collection_policies: Mapping[str, RetentionPolicy]
) -> RetentionPolicy | None:
    """Weigh a stream's own policy against its collection's (see the module docstring)."""
    nearest: RetentionPolicy | None = None
    for name in collection_ancestry(collection):
        policy = collection_policies.get(name)
        if policy is None:
            continue
        if policy.override_per_stream:
            return policy
        if nearest is None:
            nearest = policy
    return own if own is not None else nearest


class RetentionMixin(StoreCore):
    """The retention half of :class:`~pingthings.server.metadata.MetadataStore`."""

    def set_collection_retention(
        self, collection: str, remove_older_than_ns: int | None, override_per_stream: bool = False
    ) -> None:
        """Set a collection's policy (the collection need not have streams yet)."""
        collection = check_collection(collection)
        policy = _check_policy(remove_older_than_ns, override_per_stream)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO collection_retention (collection, remove_older_than_ns, override_per_stream)"
                " VALUES (?, ?, ?) ON CONFLICT (collection) DO UPDATE SET"
                " remove_older_than_ns = excluded.remove_older_than_ns,"
                " override_per_stream = excluded.override_per_stream",
                (collection, policy.remove_older_than_ns, int(policy.override_per_stream)),
            )

    def clear_collection_retention(self, collection: str) -> None:
        """Remove a collection's policy, if any."""
        collection = check_collection(collection)
        with self._write() as conn:
            conn.execute("DELETE FROM collection_retention WHERE collection = ?", (collection,))

    def _collection_policies(self) -> dict[str, RetentionPolicy]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT collection, remove_older_than_ns, override_per_stream FROM collection_retention"
            ).fetchall()
        return {name: RetentionPolicy(ns, bool(override)) for name, ns, override in rows}

    def get_collection_properties(self, collection: str) -> CollectionProperties:
        """The properties of a collection: its own retention policy (``None`` when unset)."""
        collection = check_collection(collection)
        with self._read() as conn:
            row = conn.execute(
                "SELECT remove_older_than_ns, override_per_stream FROM collection_retention"
                " WHERE collection = ?",
                (collection,),
            ).fetchone()
            if row is None:
                if conn.execute(
                    "SELECT 1 FROM stream_meta WHERE collection = ? LIMIT 1", (collection,)
                ).fetchone():
                    return CollectionProperties(retention=None)
                raise ObjectNotFound(f"collection {collection!r} has no streams and no properties")
        return CollectionProperties(retention=RetentionPolicy(row[0], bool(row[1])))

    def set_stream_retention(
        self, uuid: bytes, remove_older_than_ns: int | None, override_per_stream: bool = False
    ) -> None:
        """Set a stream's own policy (StreamNotFound, 404, for an unknown stream)."""
        uuid = check_uuid(uuid)
        policy = _check_policy(remove_older_than_ns, override_per_stream)
        with self._write() as conn:
            updated = conn.execute(
                "UPDATE stream_meta SET retention_set = 1, retention_ns = ?, retention_override = ?"
                " WHERE uuid = ?",
                (policy.remove_older_than_ns, int(policy.override_per_stream), uuid),
            ).rowcount
            if updated == 0:
                raise StreamNotFound()

    def clear_stream_retention(self, uuid: bytes) -> None:
        """Remove a stream's own policy (StreamNotFound, 404, for an unknown stream)."""
        uuid = check_uuid(uuid)
        with self._write() as conn:
            updated = conn.execute(
                "UPDATE stream_meta SET retention_set = 0, retention_ns = NULL, retention_override = 0"
                " WHERE uuid = ?",
                (uuid,),
            ).rowcount
            if updated == 0:
                raise StreamNotFound()

    def get_stream_retention(self, uuid: bytes) -> tuple[RetentionPolicy | None, RetentionPolicy | None]:
        """The stream's own policy and the effective one (StreamNotFound, 404, if unknown)."""
        uuid = check_uuid(uuid)
        with self._read() as conn:
            row = conn.execute(
                "SELECT collection, retention_set, retention_ns, retention_override FROM stream_meta"
                " WHERE uuid = ?",
                (uuid,),
            ).fetchone()
            if row is None:
                raise StreamNotFound()
            policies = self._collection_policies()
        collection, is_set, ns, override = row
        own = RetentionPolicy(ns, bool(override)) if is_set else None
        return own, effective_policy(collection, own, policies)

    def retention_targets(self) -> list[tuple[bytes, int]]:
        """Every live stream whose effective policy trims: ``(uuid, remove_older_than_ns)``.

        A hidden stream follows only its own policy: any key may set a collection's policy, and a
        stream hidden from non-admin keys must not lose data to one of them (an admin gives the
        hidden stream a policy of its own).
        """
        with self._read() as conn:
            policies = self._collection_policies()
            rows = conn.execute(
                "SELECT uuid, collection, retention_set, retention_ns, retention_override, hidden"
                " FROM stream_meta ORDER BY uuid"
            ).fetchall()
        targets: list[tuple[bytes, int]] = []
        for uuid, collection, is_set, ns, override, hidden in rows:
            own = RetentionPolicy(ns, bool(override)) if is_set else None
            policy = own if hidden else effective_policy(collection, own, policies)
            if policy is not None and policy.remove_older_than_ns is not None:
                targets.append((bytes(uuid), policy.remove_older_than_ns))
        return targets
