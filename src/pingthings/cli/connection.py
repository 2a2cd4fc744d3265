"""Open a client from the ``--endpoint/--apikey/--profile`` options and find streams by name."""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from pingthings.cli.endpoint import LOCAL_ENDPOINT, configured_source
from pingthings.cli.errors import EXIT_NOT_FOUND, EXIT_USAGE, UserError, user_error

if TYPE_CHECKING:
    from pingthings.timeseries import Client, Stream


@dataclass
class ConnectionOptions:
    """What ``pingthings.timeseries.connect`` needs; ``None`` falls back to env vars and profiles.

    Mutable, because options given after the subcommand override the group's (see
    :mod:`pingthings.cli.options`).
    """

    endpoint: str | None = None
    apikey: str | None = None
    profile: str | None = None

    def resolved(self) -> ConnectionOptions:
        """These options, with ``127.0.0.1:4410`` when neither they nor a profile name a server."""
        if self.endpoint or self.profile or configured_source() is not None:
            return self
        return ConnectionOptions(LOCAL_ENDPOINT, self.apikey, None)

    def describe(self) -> str | None:
        """The endpoint (or profile) as shown in error messages."""
        if self.endpoint:
            return self.endpoint
        return f"(profile {self.profile})" if self.profile else None


@contextmanager
def open_client(options: ConnectionOptions) -> Iterator[Client]:
    """Connect, yield the client, and always close it; connection failures become a :class:`UserError`."""
    from pingthings.timeseries import connect

    options = options.resolved()
    try:
        client = connect(profile=options.profile, endpoint=options.endpoint, apikey=options.apikey)
    except ValueError as exc:  # a malformed endpoint, profile or key: the user's settings
        raise UserError(" ".join(str(exc).split()), EXIT_USAGE) from exc
    except Exception as exc:
        error = user_error(exc, options.describe())
        if error is None:
            raise
        raise error from exc
    try:
        yield client
    except (click.ClickException, BrokenPipeError):
        raise
    except Exception as exc:
        error = user_error(exc, options.describe())
        if error is None:
            raise
        raise error from exc
    finally:
        client.close()


def resolve_stream(client: Client, identifier: str) -> Stream:
    """Find one stream by UUID or by ``collection/name``.

    Raises
    ------
    UserError
        With exit code 4 if no stream matches, or 2 if a name matches several streams.
    """
    try:
        stream_uuid = uuid_module.UUID(identifier)
    except ValueError:
        stream_uuid = None
    if stream_uuid is not None:
        stream = client.stream_from_uuid(stream_uuid)
        if not stream.exists():
            raise UserError(f"no stream with UUID {stream_uuid}", EXIT_NOT_FOUND)
        return stream
    collection, sep, name = identifier.rpartition("/")
    if not sep or not collection or not name:
        raise UserError(f"{identifier!r} is neither a stream UUID nor COLLECTION/NAME", EXIT_USAGE)
    matches = list(client.streams_in_collection(collection, is_collection_prefix=False, tags={"name": name}))
    if not matches:
        raise UserError(f"no stream named {name!r} in collection {collection!r}", EXIT_NOT_FOUND)
    if len(matches) > 1:
        raise UserError(f"{len(matches)} streams are named {identifier!r}; use a UUID", EXIT_USAGE)
    return matches[0]
