"""Where the client finds its call policy: timeout, retries, retry budget and the limiter queue bound.

Each value is resolved on its own, first match wins, in the same order as the connection settings of
:mod:`pingthings.timeseries.config`:

1. the argument of :func:`pingthings.timeseries.connect` / ``AsyncClient.connect``;
2. the profile named by the ``profile`` argument;
3. the environment;
4. the profile named by ``BTRDB_PROFILE``, else the profile ``default``;
5. the default.

============== ============================= ============ ===============================================
argument       environment                   profile key  default
============== ============================= ============ ===============================================
``timeout``    ``PINGTHINGS_TIMEOUT``        timeout      60 s per unary call / per streamed message
``retries``    ``PINGTHINGS_RETRIES``        retries      3
``retry_budget`` ``PINGTHINGS_RETRY_BUDGET`` retry_budget 10 s
``max_waiting`` ``PINGTHINGS_MAX_WAITING``   max_waiting  1000
============== ============================= ============ ===============================================

A timeout of ``none`` (or ``inf``) in the environment or a profile, or ``math.inf`` as an argument, turns
the limit off.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from pingthings.timeseries._call_policy import (
    DEFAULT_MAX_WAITING,
    DEFAULT_RETRIES,
    DEFAULT_RETRY_BUDGET,
    DEFAULT_TIMEOUT,
    CallSettings,
)
from pingthings.timeseries.config import DEFAULT_PROFILE, ENV_PROFILE, load_profile, parse_endpoint
from pingthings.timeseries.exceptions import InvalidArgumentError

ENV_TIMEOUT = "PINGTHINGS_TIMEOUT"
ENV_RETRIES = "PINGTHINGS_RETRIES"
ENV_RETRY_BUDGET = "PINGTHINGS_RETRY_BUDGET"
ENV_MAX_WAITING = "PINGTHINGS_MAX_WAITING"


def _seconds(value: Any, where: str, *, allow_zero: bool = False, allow_none: bool = False) -> float:
    text = value.strip().lower() if isinstance(value, str) else None
    if allow_none and (value is None or text in {"none", "inf", "infinity", "off"}):
        return math.inf
    try:
        if isinstance(value, bool):
            raise ValueError
        seconds = float(text) if text is not None else float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{where} must be a number of seconds, got {value!r}") from None
    if math.isnan(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise InvalidArgumentError(
            f"{where} must be {'zero or ' if allow_zero else ''}positive, got {value!r}"
        )
    return seconds


def _count(value: Any, where: str, *, minimum: int) -> int:
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        number = int(value.strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{where} must be a whole number, got {value!r}") from None
    if number < minimum:
        raise InvalidArgumentError(f"{where} must be at least {minimum}, got {value!r}")
    return number


def resolve_call_settings(
    profile: str | None = None,
    *,
    timeout: float | None = None,
    retries: int | None = None,
    retry_budget: float | None = None,
    max_waiting: int | None = None,
    environ: Mapping[str, str] | None = None,
    home: str | os.PathLike[str] | None = None,
) -> CallSettings:
    """Resolve the call policy (see the module docstring for the order and the defaults).

    Parameters
    ----------
    profile
        The profile argument of ``connect()`` (a ``host:port`` given there is not a profile).
    timeout, retries, retry_budget, max_waiting
        The arguments of ``connect()``; None means not given.
    environ, home
        The environment and home directory to read (default: the process's).

    Raises
    ------
    InvalidArgumentError
        For a value that is not a positive number (timeouts) or a whole number (counts).
    """
    env = os.environ if environ is None else environ
    explicit: dict[str, Any] = {}
    implicit: dict[str, Any] = {}
    if profile is not None and not _is_endpoint(profile):
        explicit = load_profile(profile, required=True, home=home)
    else:
        name = env.get(ENV_PROFILE) or DEFAULT_PROFILE
        implicit = load_profile(name, required=False, home=home)

    def pick(argument: Any, key: str, env_name: str, parse: Callable[[Any, str], Any], default: Any) -> Any:
        if argument is not None:
            return parse(argument, f"the {key} argument")
        if key in explicit:
            return parse(explicit[key], f"profile {profile!r}'s {key}")
        if env.get(env_name):
            return parse(env[env_name], f"${env_name}")
        if key in implicit:
            return parse(implicit[key], f"the profile's {key}")
        return default

    return CallSettings(
        timeout=pick(
            timeout, "timeout", ENV_TIMEOUT, lambda v, w: _seconds(v, w, allow_none=True), DEFAULT_TIMEOUT
        ),
        retries=pick(retries, "retries", ENV_RETRIES, lambda v, w: _count(v, w, minimum=0), DEFAULT_RETRIES),
        retry_budget=pick(
            retry_budget,
            "retry_budget",
            ENV_RETRY_BUDGET,
            lambda v, w: _seconds(v, w, allow_zero=True),
            DEFAULT_RETRY_BUDGET,
        ),
        max_waiting=pick(
            max_waiting,
            "max_waiting",
            ENV_MAX_WAITING,
            lambda v, w: _count(v, w, minimum=0),
            DEFAULT_MAX_WAITING,
        ),
    )


def _is_endpoint(text: str) -> bool:
    try:
        parse_endpoint(text)
    except InvalidArgumentError:
        return False
    return True
