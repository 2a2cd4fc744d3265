"""HTTP status codes for the client's errors, and exception handlers for Starlette and FastAPI.

A web service that calls the platform should answer 404 for an unknown stream, 400 for a bad
argument and 503 while the platform is unreachable, not 500 for all of them (a 500 also makes some
servers drop the keep-alive connection). :func:`status_for_error` gives the status for any
exception; :func:`add_exception_handlers` installs handlers that answer with it.

* 404: ``StreamNotFoundError``, ``ObjectNotFoundError``, ``NoSuchPointError``;
* 400: ``InvalidArgumentError`` and its subclasses (``InvalidTimeRange``, ``BadValue``, ...);
* 403: ``PermissionDeniedError``;
* 409: ``StreamExistsError``, ``AmbiguousStreamError``, ``AlreadyExistsError``,
  ``PropertyVersionMismatchError`` and any other ``InvalidOperation``;
* 504: ``DeadlineExceededError``, and any ``TimeoutError`` (what ``anyio.fail_after`` raises when a
  per-request deadline passes);
* 503: ``ConnectionError`` (unreachable, connection lost, server unavailable), ``ClientClosedError``
  and ``OverloadedError`` (too many calls waiting for the client's concurrency limit);
* 501: ``NotImplementedByServerError``;
* 502: any other ``PingThingsError`` (``ServerError``, ...).

This module imports no web framework; :func:`add_exception_handlers` imports Starlette when called.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from pingthings.timeseries import exceptions as errors

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import JSONResponse

__all__ = ["RETRY_AFTER_SECONDS", "add_exception_handlers", "error_body", "status_for_error"]

RETRY_AFTER_SECONDS = 1
"""The ``Retry-After`` a 503 answer carries: the platform usually comes back within seconds."""

_STATUS_BY_CLASS: dict[type[BaseException], int] = {
    errors.StreamNotFoundError: 404,
    errors.ObjectNotFoundError: 404,
    errors.NoSuchPointError: 404,
    errors.InvalidArgumentError: 400,
    errors.PermissionDeniedError: 403,
    errors.InvalidOperation: 409,
    errors.DeadlineExceededError: 504,
    builtins.TimeoutError: 504,
    errors.ConnectionError: 503,
    errors.ClientClosedError: 503,
    errors.NotImplementedByServerError: 501,
    errors.PingThingsError: 502,
}
"""Status by class; the most specific class in an exception's MRO wins."""

_STATUS_BY_CLASS_NAME: dict[str, int] = {
    "OverloadedError": 503,
}
"""Status by class name, for error classes newer than this table (matched like the classes)."""


def status_for_error(exc: BaseException) -> int | None:
    """The HTTP status that answers a request which failed with ``exc``.

    Parameters
    ----------
    exc
        The exception raised while handling the request.

    Returns
    -------
    int or None
        The status from the table in this module's docstring, or None for an exception that is
        not the client's (nor a ``TimeoutError``): the framework's own handling should see it.

    Examples
    --------
    >>> from pingthings.timeseries.exceptions import StreamNotFoundError
    >>> status_for_error(StreamNotFoundError("no such stream"))
    404
    >>> status_for_error(KeyError("x")) is None
    True
    """
    for cls in type(exc).__mro__:
        status = _STATUS_BY_CLASS.get(cls)
        if status is None:
            status = _STATUS_BY_CLASS_NAME.get(cls.__name__)
        if status is not None:
            return status
    return None


_PUBLIC_REASON = {
    501: "the time series platform does not support this request",
    502: "the time series platform reported an error",
    503: "the time series platform is unavailable; retry shortly",
    504: "the time series platform did not answer in time",
}


def error_body(exc: BaseException, status: int, *, expose_details: bool = False) -> dict[str, str]:
    """The JSON body of an error answer: ``{"error": <class name>, "detail": <text>}``.

    Parameters
    ----------
    exc
        The exception.
    status
        The status it maps to.
    expose_details
        For 5xx answers, send the exception's own message (it names the platform's host and
        port) instead of a generic sentence. 4xx answers always carry the message: it tells the
        caller what was wrong with the request.
    """
    if status >= 500 and not expose_details:
        detail = _PUBLIC_REASON.get(status, "the request failed")
    else:
        detail = str(exc) or type(exc).__name__
    return {"error": type(exc).__name__, "detail": detail}


def add_exception_handlers(app: Any, *, expose_details: bool = False) -> None:
    """Answer the client's errors (and ``TimeoutError``) with their HTTP status, on a Starlette
    or FastAPI application.

    Parameters
    ----------
    app
        A ``starlette.applications.Starlette`` (FastAPI apps are Starlette apps).
    expose_details
        See :func:`error_body`.

    Notes
    -----
    Needs Starlette (``pip install starlette`` or ``fastapi``), imported here and nowhere else.
    A 503 answer carries ``Retry-After``. An error raised after a streaming response has sent
    its headers cannot change the status any more; the server then ends the response early.

    Examples
    --------
    >>> from fastapi import FastAPI  # doctest: +SKIP
    >>> app = FastAPI()  # doctest: +SKIP
    >>> add_exception_handlers(app)  # doctest: +SKIP
    """
    from starlette.responses import JSONResponse

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        status = status_for_error(exc)
        if status is None:  # pragma: no cover - only registered for mapped classes
            raise exc
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
        return JSONResponse(error_body(exc, status, expose_details=expose_details), status, headers=headers)

    app.add_exception_handler(errors.PingThingsError, handle)
    app.add_exception_handler(builtins.TimeoutError, handle)
