"""click parameter types for times, durations and ``HOST:PORT`` addresses."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import click

from pingthings.cli.errors import EXIT_USAGE, UserError
from pingthings.wire.limits import MAX_POINT_WIDTH, MIN_TIME, TIME_LIMIT

_DURATION_UNITS: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "min": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zµ]+)?\s*$")


def parse_time(text: str) -> int:
    """Parse a point in time into int nanoseconds since the Unix epoch (UTC).

    Parameters
    ----------
    text
        An integer number of nanoseconds, ``now``, or an ISO 8601 date/time such as
        ``2024-06-01``, ``2024-06-01T12:00:00Z`` or ``2024-06-01 12:00:00.25+02:00``.
        A time without a zone is taken as UTC.

    Raises
    ------
    ValueError
        If the text is none of those, or lies outside the time axis the server accepts.
    """
    value = text.strip()
    if value.lower() == "now":
        return time.time_ns()
    if re.fullmatch(r"[+-]?\d+", value):
        ns = int(value)
    else:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{text!r} is not a time: use ISO 8601 (2024-06-01T12:00:00Z), integer nanoseconds or 'now'"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
        ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    if not MIN_TIME <= ns < TIME_LIMIT:
        raise ValueError(f"{text!r} is outside the time axis the server accepts (1933 to 2079)")
    return ns


def parse_duration(text: str) -> int:
    """Parse a duration such as ``1s``, ``250ms``, ``5m``, ``2h`` or plain nanoseconds into int ns.

    Raises
    ------
    ValueError
        If the text is not a positive duration.
    """
    match = _DURATION_RE.match(text.lower())
    if match is None or (match.group(2) or "ns") not in _DURATION_UNITS:
        raise ValueError(f"{text!r} is not a duration: use e.g. 500ms, 1s, 5m, 2h or integer nanoseconds")
    try:
        ns = int(Decimal(match.group(1)) * _DURATION_UNITS[match.group(2) or "ns"])
    except InvalidOperation:  # pragma: no cover - the regex admits only decimal numbers
        raise ValueError(f"{text!r} is not a duration") from None
    if ns <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return ns


def parse_listen(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:PORT`` for IPv6) into host and port; port 0 picks a free one.

    Raises
    ------
    ValueError
        If there is no port, or it is not an integer in 0..65535.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} is not HOST:PORT (for example 127.0.0.1:4410)")
    host = host.strip("[]")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r} has no valid port (0-65535)")
    return host, int(port_text)


def _invalid(exc: ValueError, param: click.Parameter | None, ctx: click.Context | None) -> UserError:
    """A one-line error (no usage banner) naming the option whose value is wrong."""
    where = param.get_error_hint(ctx) if param is not None and ctx is not None else "value"
    return UserError(f"invalid {where}: {exc}", EXIT_USAGE)


class TimeParam(click.ParamType):
    """A point in time; see :func:`parse_time`."""

    name = "TIME"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_time(str(value))
        except ValueError as exc:
            raise _invalid(exc, param, ctx) from None


class DurationParam(click.ParamType):
    """A positive duration; see :func:`parse_duration`."""

    name = "DURATION"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            raise _invalid(exc, param, ctx) from None


class ListenParam(click.ParamType):
    """A ``HOST:PORT`` address, returned unchanged once checked."""

    name = "HOST:PORT"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            parse_listen(str(value))
        except ValueError as exc:
            raise _invalid(exc, param, ctx) from None
        return str(value)


TIME = TimeParam()
DURATION = DurationParam()
LISTEN = ListenParam()
POINT_WIDTH = click.IntRange(0, MAX_POINT_WIDTH)
