"""The exception hierarchy and the status-code mapping."""

from __future__ import annotations

import builtins

import pytest

from pingthings.timeseries import exceptions as exc
from pingthings.wire.status import StatusCode

NON_OK_CODES = [code for code in StatusCode if code != StatusCode.OK]

# The classes btrdb-python users rely on, by code (btrdb-semantics §7), plus our additions.
EXPECTED = {
    401: exc.NoSuchPointError,
    404: exc.StreamNotFoundError,
    406: exc.StreamExistsError,
    407: exc.InvalidCollection,
    408: exc.InvalidTagKey,
    409: exc.InvalidTagValue,
    413: exc.InvalidTimeRange,
    415: exc.InvalidPointWidth,
    417: exc.StreamExistsError,
    418: exc.AmbiguousStreamError,
    423: exc.PropertyVersionMismatchError,
    425: exc.BadValue,
    429: exc.RecycledUUIDError,
    437: exc.PermissionDeniedError,
    441: exc.BadSQLValue,
    442: exc.AlreadyExistsError,
    445: exc.ObjectNotFoundError,
    450: exc.VersionNotAvailable,
    501: exc.NotImplementedByServerError,
}


@pytest.mark.parametrize("code", NON_OK_CODES, ids=lambda c: f"{int(c)}-{c.name}")
def test_every_status_code_raises_a_client_error_carrying_it(code: StatusCode) -> None:
    with pytest.raises(exc.PingThingsError) as info:
        exc.raise_for_status(int(code), f"message for {code.name}")
    error = info.value
    assert error.code == int(code)
    assert f"message for {code.name}" in str(error)
    assert f"[{int(code)}]" in str(error)
    expected = EXPECTED.get(int(code))
    if expected is not None:
        assert type(error) is expected


def test_ok_status_does_not_raise() -> None:
    assert exc.raise_for_status(0, "") is None


def test_unknown_code_becomes_server_error() -> None:
    error = exc.error_for_status(499, "odd")
    assert type(error) is exc.ServerError
    assert (error.code, error.message) == (499, "odd")


def test_server_error_takes_code_then_message() -> None:
    error = exc.ServerError(500, "invariant failed")
    assert (error.code, str(error)) == (500, "[500] invariant failed")


def test_builtin_categories() -> None:
    assert issubclass(exc.InvalidArgumentError, ValueError)
    for cls in (
        exc.InvalidTimeRange,
        exc.BadValue,
        exc.BadSQLValue,
        exc.VersionNotAvailable,
        exc.RecycledUUIDError,
    ):
        assert issubclass(cls, exc.InvalidArgumentError)
    assert issubclass(exc.ConnectionError, builtins.ConnectionError)
    assert issubclass(exc.CredentialsFileNotFound, FileNotFoundError)
    assert issubclass(exc.CredentialsFileNotFound, exc.CredentialsError)
    assert issubclass(exc.ProfileNotFound, exc.CredentialsError)
    assert issubclass(exc.PermissionDeniedError, PermissionError)
    assert issubclass(exc.StreamNotFoundError, LookupError)
    assert exc.BTrDBError is exc.PingThingsError
    for name in exc.__all__:
        obj = getattr(exc, name)
        if isinstance(obj, type):
            assert issubclass(obj, exc.PingThingsError), name


@pytest.mark.parametrize("status", [16, 7])
def test_grpc_auth_failures_are_permission_denied(status: int) -> None:
    error = exc.error_from_grpc_status(status, "invalid api key", "h.example:4411", "/v5api.BTrDB/Info")
    assert isinstance(error, exc.PermissionDeniedError)
    assert error.code == status
    assert "h.example:4411" in str(error) and "invalid api key" in str(error)


def test_grpc_unavailable_names_the_endpoint() -> None:
    error = exc.error_from_grpc_status(14, "connection refused", "h.example:4410")
    assert isinstance(error, exc.ConnectionError)
    assert "h.example:4410" in str(error)


def test_grpc_details_carrying_a_v5_code_map_to_that_code() -> None:
    error = exc.error_from_grpc_status(2, "[404] stream does not exist", "h:1")
    assert isinstance(error, exc.StreamNotFoundError)
    assert error.code == 404


def test_grpc_other_statuses() -> None:
    assert isinstance(exc.error_from_grpc_status(4, "late", "h:1"), exc.DeadlineExceededError)
    assert isinstance(exc.error_from_grpc_status(4, "late", "h:1"), TimeoutError)
    unimplemented = exc.error_from_grpc_status(12, "", "h:1", "/pingthings.platform.v1.Platform/ListUnits")
    assert isinstance(unimplemented, NotImplementedError)
    assert "ListUnits" in str(unimplemented)
    other = exc.error_from_grpc_status(13, "boom", "h:1")
    assert type(other) is exc.ServerError and other.code == 13


def test_client_side_errors_show_no_server_code() -> None:
    error = exc.InvalidArgumentError("device has unknown key 'x'")
    assert str(error) == "device has unknown key 'x'"
    assert error.code == exc.InvalidArgumentError.code  # still carries its category's code
    assert str(exc.InvalidArgumentError("bad", 421)) == "[421] bad"
