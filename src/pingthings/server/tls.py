"""TLS for the server: an SSL context offering HTTP/2 (ALPN ``h2``), as gRPC requires."""

from __future__ import annotations

import ssl
from pathlib import Path

from pingthings.server.config import ConfigError


def server_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    """Build a server-side TLS context from a PEM certificate chain and private key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load TLS certificate {cert} / key {key}: {exc}") from None
    context.set_alpn_protocols(["h2"])
    return context
