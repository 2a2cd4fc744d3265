"""``pingthings compact``: drop old data versions of a stopped server's data directory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from pingthings.cli.errors import EXIT_USAGE, UserError
from pingthings.cli.params import TIME


def _when(ns: int) -> str:
    """An ISO 8601 rendering of ``ns`` for the summary."""
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat(timespec="seconds")


@click.command()
@click.option("--data", "data_dir", required=True,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Data directory of a server that is not running.")
@click.option("--before", "before", type=TIME, required=True,
              help="Drop the versions older than the one current at this time (ISO 8601, ns, or 'now').")
@click.option("--no-vacuum", is_flag=True, help="Free the blocks but do not shrink the database file.")
def compact(data_dir: Path, before: int, no_vacuum: bool) -> None:
    """Drop every stream's data versions older than the one current at TIME and free their blocks.

    Reads at a version current at TIME or later are unchanged; reads of a dropped version get a
    clear "version not available" error. Stop the server first: a running server may be reading
    the versions being dropped.
    """
    from pingthings.server.engine import Engine
    from pingthings.server.runtime import ENGINE_FILE

    path = data_dir / ENGINE_FILE
    if not path.is_file():
        raise UserError(f"{data_dir} holds no engine database ({ENGINE_FILE})", EXIT_USAGE)
    size_before = path.stat().st_size
    with Engine(path, cache_bytes=0) as engine:
        results = engine.compact(before)
        if not no_vacuum:
            engine.vacuum()
    changed = [r for r in results if r.versions_dropped]
    versions = sum(r.versions_dropped for r in changed)
    blocks = sum(r.blocks_freed for r in changed)
    freed = sum(r.bytes_freed for r in changed)
    click.echo(
        f"compacted {len(changed)} of {len(results)} streams before {_when(before)}: dropped {versions} "
        f"versions, freed {blocks} blocks ({freed / 2**20:.1f} MiB of block data)"
    )
    click.echo(f"engine file: {size_before / 2**20:.1f} MiB -> {path.stat().st_size / 2**20:.1f} MiB")
