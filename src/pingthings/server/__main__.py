"""``python -m pingthings.server``: run the embedded server until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pingthings.server.config import DEFAULT_LISTEN, ConfigError, ServerConfig, load_keys_file, normalize_keys
from pingthings.wire.status import StatusError


def build_parser() -> argparse.ArgumentParser:
    """The command-line options (the same as ``pingthings serve``)."""
    parser = argparse.ArgumentParser(
        prog="python -m pingthings.server", description="Run the embedded BTrDB-v5-compatible server."
    )
    parser.add_argument("--data", required=True, type=Path, help="data directory (created if missing)")
    parser.add_argument(
        "--listen", default=DEFAULT_LISTEN, help=f"HOST:PORT to listen on (default {DEFAULT_LISTEN})"
    )
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument("--api-key", help="require this API key (authorization: Bearer <key>)")
    keys.add_argument("--keys-file", type=Path, help="YAML list of keys, each optionally with admin: true")
    parser.add_argument("--tls-cert", type=Path, help="PEM certificate chain (needs --tls-key)")
    parser.add_argument("--tls-key", type=Path, help="PEM private key (needs --tls-cert)")
    parser.add_argument(
        "--allow-unauthenticated-public",
        action="store_true",
        help="allow a non-loopback --listen address without API keys",
    )
    parser.add_argument(
        "--retention-interval",
        type=float,
        default=3600.0,
        help="seconds between retention passes (default 3600)",
    )
    parser.add_argument(
        "--advertise", help="HOST:PORT that Info reports to clients (default: listen address)"
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """Build the server configuration from parsed options."""
    keys = normalize_keys([args.api_key] if args.api_key else None)
    if args.keys_file is not None:
        keys = load_keys_file(args.keys_file)
    return ServerConfig(
        data_dir=args.data,
        listen=args.listen,
        api_keys=keys,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        allow_insecure_public=args.allow_unauthenticated_public,
        retention_interval=args.retention_interval,
        advertise=args.advertise,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    from pingthings.server.app import serve_forever

    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = config_from_args(args)
        serve_forever(config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the address is in use, or the data directory is not writable
        print(
            f"error: cannot start the server on {args.listen} with data in {args.data}: {exc}",
            file=sys.stderr,
        )
        return 1
    except StatusError as exc:  # the stores refused to open (e.g. a newer schema)
        print(f"error: cannot open the data in {args.data}: {exc.msg}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
