"""The ``pingthings`` command: ``serve``, ``demo``, ``info``, ``ls``, ``query`` and ``sql``.

Run ``pingthings --help`` or ``pingthings COMMAND --help``. Exit codes are listed in
:mod:`pingthings.cli.errors`.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from pingthings import __version__
from pingthings.cli.connection import ConnectionOptions
from pingthings.cli.errors import EXIT_INTERRUPTED, EXIT_SERVER_START, user_error
from pingthings.cli.options import group_options
from pingthings.cli.output import quiet_exit_on_closed_stdout


class PingthingsGroup(click.Group):
    """A click group that turns user-caused errors into one line on stderr and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:  # `pingthings query ... | head`: the reader has all it wanted
            quiet_exit_on_closed_stdout()
            ctx.exit(0)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            options = ctx.obj if isinstance(ctx.obj, ConnectionOptions) else None
            error = user_error(exc, options.describe() if options else None)
            if error is None:
                raise
            raise error from exc


EPILOG = (
    "Exit codes: 0 success, 1 the server refused the operation, 2 usage error (bad option, time, "
    "duration or connection settings), 3 cannot reach or authenticate with the server, 4 no such stream, "
    f"{EXIT_SERVER_START} the server could not start (address in use, data directory unusable), "
    "130 interrupted. Connection options may also follow the command (pingthings ls --endpoint HOST:PORT)."
)


@click.group(cls=PingthingsGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@group_options
@click.version_option(__version__, "-V", "--version", prog_name="pingthings")
@click.pass_context
def cli(ctx: click.Context, endpoint: str | None, apikey: str | None, profile: str | None) -> None:
    """pingthings: a fast BTrDB / PredictiveGrid client and an embeddable BTrDB-compatible server.

    Start with `pingthings demo`, or `pingthings serve --data DIR` and point any BTrDB client at it.
    """
    ctx.obj = ConnectionOptions(endpoint=endpoint or None, apikey=apikey or None, profile=profile or None)


def _register_commands() -> None:
    from pingthings.cli.compact_cmd import compact
    from pingthings.cli.demo_cmd import demo
    from pingthings.cli.inspect_cmds import info, ls, sql
    from pingthings.cli.query_cmd import query
    from pingthings.cli.serve_cmd import serve

    for command in (serve, demo, info, ls, query, sql, compact):
        cli.add_command(command)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``pingthings`` console script."""
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="pingthings")


if __name__ == "__main__":  # pragma: no cover
    main()
