"""Exceptions raised inside the server (engine, metadata, services).

Each carries a v5 status code, so the RPC layer can put it in a response's ``stat`` field
without knowing where it came from.
"""

from __future__ import annotations

from pingthings.wire.status import StatusCode, StatusError


class ServerError(StatusError):
    """Base class of every error the server reports to a caller."""


class StreamNotFound(ServerError):
    """The uuid names no live stream (404; msg defaults to ``stream does not exist``)."""

    code = StatusCode.NO_SUCH_STREAM

    def __init__(self, msg: str = "stream does not exist") -> None:
        super().__init__(msg)


class NoSuchPoint(ServerError):
    """Nearest found no point in the asked direction (401)."""

    code = StatusCode.NO_SUCH_POINT


class InvalidTimeRange(ServerError):
    """A time or range lies outside the time axis, or start >= end (413)."""

    code = StatusCode.INVALID_TIME_RANGE


class InvalidPointWidth(ServerError):
    """A point width, resolution or window width is out of range (415)."""

    code = StatusCode.INVALID_POINT_WIDTH


class BadValue(ServerError):
    """An inserted value is NaN or infinite (425)."""

    code = StatusCode.BAD_VALUE


class InsertTooBig(ServerError):
    """One Insert carries more points than the server accepts (414)."""

    code = StatusCode.INSERT_TOO_BIG


class VersionNotAvailable(ServerError):
    """The asked data version does not exist (450)."""

    code = StatusCode.VERSION_NOT_AVAILABLE


class InvalidVersions(ServerError):
    """Changes was asked with from > to (427)."""

    code = StatusCode.INVALID_VERSIONS


class WrongArgs(ServerError):
    """Arguments of the wrong type, length or combination (421)."""

    code = StatusCode.WRONG_ARGS


class InvalidCollection(ServerError):
    """A collection name is empty, too long or not valid UTF-8 (407)."""

    code = StatusCode.INVALID_COLLECTION


class InvalidTagKey(ServerError):
    """A tag or annotation key is not allowed (408)."""

    code = StatusCode.INVALID_TAG_KEY


class InvalidTagValue(ServerError):
    """A tag or annotation value is not allowed (409)."""

    code = StatusCode.INVALID_TAG_VALUE


class SameStream(ServerError):
    """Create with a uuid that already names a stream (417)."""

    code = StatusCode.SAME_STREAM


class AmbiguousStream(ServerError):
    """Another stream already has this collection and tag set (418)."""

    code = StatusCode.AMBIGUOUS_STREAM


class ReusedUUID(ServerError):
    """Create with the uuid of an obliterated stream (429)."""

    code = StatusCode.REUSED_UUID


class PropertyVersionMismatch(ServerError):
    """The expected property version is not the stream's current one (423)."""

    code = StatusCode.ANNOTATION_VERSION_MISMATCH


class BadSQL(ServerError):
    """A metadata SQL query was refused or failed (441)."""

    code = StatusCode.BAD_SQL_VALUE


class AlreadyExists(ServerError):
    """A device or unit with the same identity already exists (442)."""

    code = StatusCode.ALREADY_EXISTS


class MissingParameter(ServerError):
    """A required field was not given (443)."""

    code = StatusCode.MISSING_PARAMETER


class UnrecognizedParameter(ServerError):
    """A field that the object does not have was given (444)."""

    code = StatusCode.UNRECOGNIZED_PARAMETER


class ObjectNotFound(ServerError):
    """No device, unit or collection with that identity (445)."""

    code = StatusCode.OBJECT_NOT_FOUND


class Unauthorized(ServerError):
    """The caller's key may not do this (437)."""

    code = StatusCode.UNAUTHORIZED


class NotImplementedRPC(ServerError):
    """The RPC is declared but not served (501)."""

    code = StatusCode.NOT_IMPLEMENTED


class FaultInjectionDisabled(ServerError):
    """FaultInject is never enabled on this server (424)."""

    code = StatusCode.FAULT_INJECTION_DISABLED


class DiskFull(ServerError):
    """The disk (or the database's size limit) is full: nothing was written (426)."""

    code = StatusCode.RESOURCE_DEPLETED
