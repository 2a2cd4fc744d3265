"""``pingthings demo``: the guided tour of the client and the embedded server."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the demo database in this directory (default: a temporary one, removed afterwards).")
@click.option("--minutes", type=click.FloatRange(min=0.05, max=60), default=3.0, show_default=True,
              help="Minutes of 120 Hz data to synthesise per stream.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the envelope plot (default: pingthings-demo.png in --data or the cwd).")
@click.option("--no-progress", is_flag=True, help="Hide the ingest progress bar.")
def demo(data_dir: Path | None, minutes: float, plot_path: Path | None, no_progress: bool) -> None:
    """Start an embedded server, ingest a synthetic substation and show what the platform does."""
    from pingthings.demo.run import run_demo

    run_demo(data_dir=data_dir, minutes=minutes, plot_path=plot_path, progress=not no_progress)
