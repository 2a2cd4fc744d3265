"""Which server a CLI command talks to: the ``--endpoint`` type and the default endpoint.

The order is the library's (``--endpoint``/``$BTRDB_ENDPOINTS``, then ``--profile``/``$BTRDB_PROFILE``,
then the ``default`` profile of the credentials file), with one step more for the command line:
when none of them names a server, commands talk to a local ``pingthings serve`` on
``127.0.0.1:4410``.
"""

from __future__ import annotations

import os

import click

from pingthings.cli.errors import EXIT_USAGE, UserError

#: Where ``pingthings serve`` listens by default, and so where commands look last.
LOCAL_ENDPOINT = "127.0.0.1:4410"


def check_endpoint(text: str) -> str:
    """Return ``text`` stripped if it is a usable ``HOST:PORT``.

    Raises
    ------
    ValueError
        For a scheme (``http://...``), an empty entry (a trailing comma) or anything the client
        cannot parse, with a message saying what to write instead.
    """
    from pingthings.timeseries.config import parse_endpoint
    from pingthings.timeseries.exceptions import InvalidArgumentError

    value = text.strip()
    if "://" in value:
        raise ValueError(
            f"{text!r} has a scheme; give HOST:PORT only, e.g. {value.partition('://')[2].rstrip('/')!r} "
            "(port 4411 means TLS; a profile's 'tls:' key chooses otherwise)"
        )
    entries = [entry.strip() for entry in value.split(",")]
    if any(not entry for entry in entries):
        raise ValueError(f"{text!r} has an empty entry: remove the stray comma")
    for entry in entries:
        try:
            parse_endpoint(entry)
        except InvalidArgumentError as exc:
            raise ValueError(str(exc)) from None
    return value


class EndpointParam(click.ParamType):
    """A ``HOST:PORT`` endpoint (or a comma-separated list of them), checked before connecting."""

    name = "HOST:PORT"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return check_endpoint(str(value))
        except ValueError as exc:
            where = param.get_error_hint(ctx) if param is not None and ctx is not None else "endpoint"
            raise UserError(f"invalid {where}: {exc}", EXIT_USAGE) from None


ENDPOINT = EndpointParam()


def configured_source() -> str | None:
    """What names the server when no option does: ``$BTRDB_PROFILE``, the default profile, or None.

    ``$BTRDB_ENDPOINTS`` is not checked here: click hands it over as ``--endpoint``.
    """
    from pingthings.timeseries.config import DEFAULT_PROFILE, ENV_PROFILE, load_profile

    if os.environ.get(ENV_PROFILE):
        return f"profile {os.environ[ENV_PROFILE]!r} (${ENV_PROFILE})"
    try:
        default = load_profile(DEFAULT_PROFILE, required=False)
    except Exception:  # a broken credentials file is reported when connecting, not in --help
        return f"profile {DEFAULT_PROFILE!r}"
    return f"profile {DEFAULT_PROFILE!r}" if default.get("endpoints") else None


def default_endpoint_help() -> str:
    """The ``--endpoint`` default as ``--help`` shows it: the order, and what applies right now."""
    if os.environ.get("BTRDB_ENDPOINTS"):
        now = f"$BTRDB_ENDPOINTS={os.environ['BTRDB_ENDPOINTS']}"
    else:
        now = configured_source() or LOCAL_ENDPOINT
    return f"$BTRDB_ENDPOINTS, else the profile's endpoint, else {LOCAL_ENDPOINT}; now: {now}"
