"""The connection options, accepted before the subcommand (``pingthings --endpoint X ls``) and after
it (``pingthings ls --endpoint X``); a value given after the subcommand wins."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from pingthings.cli.connection import ConnectionOptions
from pingthings.cli.endpoint import ENDPOINT, default_endpoint_help

F = TypeVar("F", bound=Callable[..., Any])

ENDPOINT_HELP = "Server to talk to."
APIKEY_HELP = "API key sent as a bearer token (default: $BTRDB_API_KEY or the profile's key)."
PROFILE_HELP = "Profile in ~/.predictivegrid/credentials.yaml to take the endpoint and key from."


def group_options(func: F) -> F:
    """The group-level ``--endpoint``, ``--apikey`` and ``--profile``, with their environment variables."""
    func = click.option("--profile", envvar="BTRDB_PROFILE", metavar="NAME", help=PROFILE_HELP)(func)
    func = click.option("--apikey", envvar="BTRDB_API_KEY", metavar="KEY", help=APIKEY_HELP)(func)
    func = click.option("--endpoint", envvar="BTRDB_ENDPOINTS", type=ENDPOINT, help=ENDPOINT_HELP,
                        show_default=default_endpoint_help())(func)
    return func


def _override(field: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is None:
            return
        options = ctx.find_object(ConnectionOptions)
        if options is None:  # the subcommand was invoked on its own, without the group
            options = ctx.ensure_object(ConnectionOptions)
        setattr(options, field, value)

    return callback


def command_options(func: F) -> F:
    """The same options on a subcommand: they override what was given before the subcommand."""
    func = click.option("--profile", metavar="NAME", help=PROFILE_HELP, expose_value=False,
                        callback=_override("profile"))(func)
    func = click.option("--apikey", metavar="KEY", help=APIKEY_HELP, expose_value=False,
                        callback=_override("apikey"))(func)
    func = click.option("--endpoint", type=ENDPOINT, help=ENDPOINT_HELP + " Overrides the global option.",
                        expose_value=False, callback=_override("endpoint"))(func)
    return func
