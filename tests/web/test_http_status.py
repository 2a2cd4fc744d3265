"""The error -> HTTP status mapping, and the Starlette/FastAPI handlers that answer with it."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from pingthings.timeseries import exceptions as errors
from pingthings.timeseries.http_status import add_exception_handlers, error_body, status_for_error

DOCUMENTED: list[tuple[BaseException, int]] = [
    (errors.StreamNotFoundError("no such stream", 404), 404),
    (errors.ObjectNotFoundError("no such device"), 404),
    (errors.NoSuchPointError("nothing before"), 404),
    (errors.InvalidArgumentError("bad"), 400),
    (errors.InvalidTimeRange("start >= end"), 400),
    (errors.InvalidPointWidth("pw 70"), 400),
    (errors.BadValue("nan"), 400),
    (errors.BadSQLValue("no"), 400),
    (errors.VersionNotAvailable("gone"), 400),
    (errors.PermissionDeniedError("wrong key"), 403),
    (errors.StreamExistsError("exists"), 409),
    (errors.AmbiguousStreamError("same name"), 409),
    (errors.AlreadyExistsError("unit exists"), 409),
    (errors.PropertyVersionMismatchError("changed"), 409),
    (errors.InvalidOperation("in use"), 409),
    (errors.DeadlineExceededError("late"), 504),
    (TimeoutError(), 504),
    (errors.ConnectionError("cannot reach 10.0.0.1:4410"), 503),
    (errors.ClientClosedError("closed"), 503),
    (errors.NotImplementedByServerError(12, "no ArrowInsert"), 501),
    (errors.ServerError(500, "boom"), 502),
    (errors.PingThingsError("other"), 502),
]


OverloadedError = errors.OverloadedError  # the limiter's overload error (the mapping knows it by name)


@pytest.mark.parametrize(("exc", "status"), DOCUMENTED, ids=[type(e).__name__ for e, _ in DOCUMENTED])
def test_every_documented_error_maps_to_its_status(exc: BaseException, status: int) -> None:
    assert status_for_error(exc) == status


def test_the_overload_error_is_a_503() -> None:
    assert status_for_error(OverloadedError("too many calls waiting")) == 503


@pytest.mark.parametrize("exc", [KeyError("x"), ValueError("x"), RuntimeError("x"), TypeError("x")])
def test_errors_that_are_not_the_clients_are_left_to_the_framework(exc: BaseException) -> None:
    assert status_for_error(exc) is None


def test_5xx_bodies_hide_the_platform_address_unless_asked() -> None:
    exc = errors.ConnectionError("cannot reach 10.0.0.1:4410")
    assert "10.0.0.1" not in error_body(exc, 503)["detail"]
    assert "10.0.0.1" in error_body(exc, 503, expose_details=True)["detail"]
    assert error_body(errors.StreamNotFoundError("no stream abc"), 404) == {
        "error": "StreamNotFoundError", "detail": "no stream abc"}


def _app_raising_each() -> object:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    raisers = [*DOCUMENTED, (OverloadedError("queue full"), 503)]

    async def fail(request: Request) -> PlainTextResponse:
        raise raisers[int(request.path_params["index"])][0]

    async def other(request: Request) -> PlainTextResponse:
        raise RuntimeError("not the client's")

    app = Starlette(routes=[Route("/fail/{index:int}", fail), Route("/other", other)])
    add_exception_handlers(app)
    return app


@pytest.mark.anyio
async def test_the_handlers_answer_every_mapping_over_asgi() -> None:
    app = _app_raising_each()
    expected = [status for _, status in DOCUMENTED] + [503]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        for index, status in enumerate(expected):
            response = await http.get(f"/fail/{index}")
            assert response.status_code == status, index
            assert set(response.json()) == {"error", "detail"}
            assert (response.headers.get("retry-after") == "1") == (status == 503)
        assert (await http.get("/other")).status_code == 500


def test_the_core_imports_no_web_framework() -> None:
    code = (
        "import sys, pingthings.timeseries, pingthings.timeseries.http_status\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'fastapi', 'uvicorn')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
