"""Read-only commands: ``info`` (server version), ``ls`` (collections and streams), ``sql`` (metadata)."""

from __future__ import annotations

import json
from typing import Any

import click

from pingthings.cli.connection import ConnectionOptions, open_client
from pingthings.cli.options import command_options
from pingthings.cli.tables import format_records, format_table

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str, sort_keys=False))


@click.command()
@json_option
@command_options
@click.pass_obj
def info(options: ConnectionOptions, as_json: bool) -> None:
    """Show the server's version and the endpoints it advertises."""
    with open_client(options) as client:
        details = client.info()
        endpoint = client.get_async_client().endpoint
    if as_json:
        _echo_json(details)
        return
    proxy = details.get("proxy") or {}
    rows = [
        ("endpoint", endpoint),
        ("server version", f"{details.get('major_version')}.{details.get('minor_version')}"),
        ("build", details.get("build", "")),
        ("proxy endpoints", ", ".join(proxy.get("proxy_endpoints", []))),
    ]
    for key, value in rows:
        click.echo(f"{key + ':':<17}{value}")


@click.command()
@click.argument("prefix", required=False, default="")
@click.option("-l", "--long", "long_", is_flag=True,
              help="List the streams (name, unit, uuid), not collections.")
@json_option
@command_options
@click.pass_obj
def ls(options: ConnectionOptions, prefix: str, long_: bool, as_json: bool) -> None:
    """List collections whose path starts with PREFIX, or with -l the streams in them."""
    with open_client(options) as client:
        if not long_:
            collections = sorted(client.list_collections(prefix or None))
            if as_json:
                _echo_json(collections)
            elif collections:
                click.echo("\n".join(collections))
            else:
                click.echo(f"no collections under {prefix!r}" if prefix else "no collections", err=True)
            return
        streams = list(client.streams_in_collection(prefix, is_collection_prefix=True))
    records = sorted(
        (
            {"collection": s.collection, "name": s.name, "unit": s.unit, "uuid": str(s.uuid)}
            for s in streams
        ),
        key=lambda r: (r["collection"] or "", r["name"] or ""),
    )
    if as_json:
        _echo_json(records)
    elif records:
        click.echo(format_table(["collection", "name", "unit", "uuid"],
                                [list(r.values()) for r in records]))
    else:
        click.echo(f"no streams under {prefix!r}" if prefix else "no streams", err=True)


@click.command()
@click.argument("statement")
@click.argument("params", nargs=-1)
@json_option
@command_options
@click.pass_obj
def sql(options: ConnectionOptions, statement: str, params: tuple[str, ...], as_json: bool) -> None:
    """Run a read-only SQL STATEMENT on the stream metadata; PARAMS bind to $1, $2, ...

    Example: pingthings sql "SELECT collection, name, unit FROM streams WHERE unit = $1" volts
    """
    with open_client(options) as client:
        rows = client.sql_query(statement, list(params) or None)
    if as_json:
        _echo_json(rows)
    else:
        click.echo(format_records(rows))
