"""``pingthings serve``: run the embedded BTrDB-compatible server until SIGINT/SIGTERM."""

from __future__ import annotations

from pathlib import Path

import click

from pingthings.cli.errors import EXIT_USAGE, UserError
from pingthings.cli.params import LISTEN, parse_listen

DEFAULT_LISTEN = "127.0.0.1:4410"


def read_keys_file(path: Path) -> list[str]:
    """API keys from a file: one per line; blank lines and ``#`` comments are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read keys file {path}: {exc.strerror or exc}", EXIT_USAGE) from exc
    keys = [line.split("#", 1)[0].strip() for line in lines]
    keys = [key for key in keys if key]
    if not keys:
        raise UserError(f"keys file {path} holds no keys", EXIT_USAGE)
    return keys


def api_keys_from(api_key: tuple[str, ...], keys_file: Path | None) -> list[str] | None:
    """Merge ``--api-key`` values and ``--keys-file``; ``None`` means no authentication."""
    keys = list(api_key)
    if keys_file is not None:
        keys.extend(read_keys_file(keys_file))
    return keys or None


@click.command()
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory holding the database (created if missing).")
@click.option("--listen", type=LISTEN, default=DEFAULT_LISTEN, show_default=True,
              help="Address to listen on; port 0 picks a free port (the chosen endpoint is printed).")
@click.option("--api-key", multiple=True, metavar="KEY",
              help="Accept this API key (repeatable). Without keys the server needs none.")
@click.option("--keys-file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="File of accepted API keys, one per line.")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="PEM certificate chain; serve TLS (needs --tls-key).")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="PEM private key of --tls-cert.")
def serve(data_dir: Path, listen: str, api_key: tuple[str, ...], keys_file: Path | None,
          tls_cert: Path | None, tls_key: Path | None) -> None:
    """Run the embedded server on DATA until interrupted (Ctrl-C or SIGTERM stop it cleanly)."""
    if (tls_cert is None) != (tls_key is None):
        raise UserError("--tls-cert and --tls-key go together", EXIT_USAGE)
    parse_listen(listen)
    from pingthings.server.app import ServerConfig, serve_forever

    config = ServerConfig(
        data_dir=data_dir,
        listen=listen,
        api_keys=api_keys_from(api_key, keys_file),
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    serve_forever(config)
