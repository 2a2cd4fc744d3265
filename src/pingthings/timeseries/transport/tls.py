"""Client TLS settings for gRPC: certificate verification plus ALPN ``h2``."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

CA_BUNDLE_ENV = "BTRDB_CA_BUNDLE"
"""Environment variable naming a PEM file of CA certificates, used when no path is given."""


def client_ssl_context(ca_bundle: str | os.PathLike[str] | None = None) -> ssl.SSLContext:
    """Build an SSLContext for talking gRPC to a server over TLS.

    Parameters
    ----------
    ca_bundle
        PEM file with the CA certificates to trust. When None, the file named by ``BTRDB_CA_BUNDLE`` is used
        if that variable is set and not empty, else the system's default trust store.

    Returns
    -------
    ssl.SSLContext
        Verifying certificates and host names, TLS 1.2 or newer, offering ALPN ``h2``.

    Raises
    ------
    FileNotFoundError
        If the CA bundle does not exist (the message says where the path came from).
    ValueError
        If the file holds no usable PEM certificate.
    """
    source = "ca_bundle argument"
    if ca_bundle is None:
        from_env = os.environ.get(CA_BUNDLE_ENV, "").strip()
        if from_env:
            ca_bundle, source = from_env, f"{CA_BUNDLE_ENV} environment variable"
    if ca_bundle is None:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:
        path = Path(ca_bundle).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"CA bundle {str(path)!r} (from the {source}) does not exist or is not a file"
            )
        try:
            # With a cafile, only that bundle is trusted, not the system store.
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(path))
        except ssl.SSLError as exc:
            raise ValueError(
                f"CA bundle {str(path)!r} (from the {source}) holds no usable certificate: {exc}"
            ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["h2"])
    return context
