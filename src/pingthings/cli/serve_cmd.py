"""``pingthings serve``: run the embedded BTrDB-compatible server until SIGINT/SIGTERM."""

from __future__ import annotations

from pathlib import Path

import click

from pingthings.cli.errors import EXIT_SERVER_START, EXIT_USAGE, UserError
from pingthings.cli.params import LISTEN

DEFAULT_LISTEN = "127.0.0.1:4410"


@click.command()
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory holding the database (created if missing).")
@click.option("--listen", type=LISTEN, default=DEFAULT_LISTEN, show_default=True,
              help="Address to listen on; port 0 picks a free port. The endpoint is printed once listening.")
@click.option("--api-key", default=None, metavar="KEY",
              help="Require this API key (clients send 'authorization: Bearer KEY').")
@click.option("--keys-file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="YAML list of accepted keys (strings, or {key: ..., admin: true}).")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="PEM certificate chain; serve TLS (needs --tls-key).")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="PEM private key of --tls-cert.")
@click.option("--allow-unauthenticated-public", is_flag=True,
              help="Allow a non-loopback --listen address without API keys (anyone could read and write).")
@click.option("--cache-mb", type=click.IntRange(min=0), default=None,
              help="MiB of decoded data blocks kept in memory for reads (0 disables the cache). "
                   "Default: a quarter of this machine's memory, at least 256 and at most 16384.")
@click.option("--compression", type=click.Choice(["gzip", "none"]), default="none", show_default=True,
              help="gzip: compress replies for clients that accept it (saves bandwidth on slow links, "
                   "costs CPU).")
@click.option("--buffer-points", type=click.IntRange(min=0), default=32_768, show_default=True,
              help="Most points of one stream buffered (journaled) before they are merged into its tree; "
                   "0 commits every insert as its own version.")
@click.option("--buffer-age", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Seconds after which buffered points are merged into the tree.")
def serve(data_dir: Path, listen: str, api_key: str | None, keys_file: Path | None,
          tls_cert: Path | None, tls_key: Path | None, allow_unauthenticated_public: bool,
          cache_mb: int | None, compression: str, buffer_points: int, buffer_age: float) -> None:
    """Run the embedded server on DATA until interrupted (Ctrl-C or SIGTERM stop it cleanly).

    Any BTrDB v5 client can connect: pingthings.timeseries, the official btrdb package, the Go bindings.
    """
    from pingthings.server.app import serve_forever
    from pingthings.server.config import (
        DEFAULT_CACHE_MB,
        ConfigError,
        ServerConfig,
        load_keys_file,
        normalize_keys,
    )
    from pingthings.server.engine import Buffering

    if api_key is not None and keys_file is not None:
        raise UserError("use either --api-key or --keys-file, not both", EXIT_USAGE)
    try:
        if keys_file is not None:
            keys = load_keys_file(keys_file)
        else:
            keys = normalize_keys([api_key] if api_key else None)
        config = ServerConfig(
            data_dir=data_dir,
            listen=listen,
            api_keys=keys,
            tls_cert=tls_cert,
            tls_key=tls_key,
            allow_insecure_public=allow_unauthenticated_public,
            cache_mb=DEFAULT_CACHE_MB if cache_mb is None else cache_mb,
            compression=None if compression == "none" else compression,
            buffering=Buffering(max_points=buffer_points, max_age=buffer_age) if buffer_points else None,
        )
    except ConfigError as exc:
        raise UserError(str(exc), EXIT_USAGE) from exc
    from pingthings.server.listener import ListenError

    try:
        serve_forever(config)
    except ListenError as exc:  # raised before anything is created in the data directory
        raise UserError(f"{exc.strerror}; choose another --listen address", EXIT_SERVER_START) from exc
    except ConfigError as exc:  # found while starting, e.g. another server holds the data directory
        raise UserError(str(exc), EXIT_SERVER_START) from exc
    except OSError as exc:  # the data directory cannot be created, opened or written
        raise UserError(f"cannot use the data directory {data_dir}: {exc.strerror or exc}",
                        EXIT_SERVER_START) from exc
