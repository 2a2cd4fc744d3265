"""Where the client finds its connection settings: arguments, environment, credentials file.

Resolution, first match wins, value by value:

1. explicit arguments (``endpoint=``, ``apikey=``, ``concurrency_limit=``, ``tls=``, ``ca_bundle=``);
2. the profile named by the ``profile`` argument, if one was given;
3. the environment: ``BTRDB_ENDPOINTS``, ``BTRDB_API_KEY``, ``PINGTHINGS_CONCURRENCY_LIMIT``,
   ``BTRDB_CA_BUNDLE``, ``PINGTHINGS_COMPRESSION``;
4. the profile named by ``BTRDB_PROFILE``, else the profile ``default`` (silently skipped when the
   credentials file or the ``default`` profile does not exist).

An explicitly named profile outranks the environment because naming it is an explicit choice; a
profile's endpoint and API key are used together, never mixed with a key from somewhere else.

The credentials file is ``${HOME}/.predictivegrid/credentials.yaml``::

    default:
      name: "default"
      btrdb:
        endpoints: "btrdb.example.com:4411"
        api_key: "e666a2d61103feb2235441fd68879440"

Port 4411 means TLS by convention. ``tls=True/False``, an endpoint scheme (``https://``/``grpcs://``
or ``http://``/``grpc://``) or a profile's ``tls:`` key overrides that.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pingthings.timeseries.exceptions import (
    CredentialsError,
    CredentialsFileNotFound,
    InvalidArgumentError,
    ProfileNotFound,
)

ENV_ENDPOINTS = "BTRDB_ENDPOINTS"
ENV_API_KEY = "BTRDB_API_KEY"
ENV_PROFILE = "BTRDB_PROFILE"
ENV_CA_BUNDLE = "BTRDB_CA_BUNDLE"
ENV_CONCURRENCY_LIMIT = "PINGTHINGS_CONCURRENCY_LIMIT"
ENV_COMPRESSION = "PINGTHINGS_COMPRESSION"
DEFAULT_PROFILE = "default"
DEFAULT_CONCURRENCY_LIMIT = 32
TLS_PORT = 4411

_TLS_SCHEMES = {"https": True, "grpcs": True, "http": False, "grpc": False}
_ENDPOINT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.%a-zA-Z]+)\]|(?P<host>[^:\[\]/\s]+)):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class Endpoint:
    """A parsed ``host:port`` (``[v6 literal]:port`` for IPv6)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything :meth:`AsyncClient.connect` needs, fully resolved.

    Attributes
    ----------
    endpoint
        Where the server listens.
    apikey
        The API key sent as ``authorization: Bearer <key>``, or None.
    tls
        Whether to speak TLS.
    ca_bundle
        Path of a PEM file with the CA certificates to trust (None: the system's defaults).
    concurrency_limit
        The number of calls allowed in flight at once.
    source
        Where the endpoint came from, for error messages (``"argument"``, ``"profile 'x'"``, ...).
    compression
        ``"gzip"`` to compress request messages, or None (replies are read compressed or not).
    """

    endpoint: Endpoint
    apikey: str | None = field(repr=False)  # never shown: reprs end up in logs
    tls: bool
    ca_bundle: str | None
    concurrency_limit: int
    source: str
    compression: str | None = None


def credentials_path(home: str | os.PathLike[str] | None = None) -> Path:
    """The path of the credentials file (``${HOME}/.predictivegrid/credentials.yaml``)."""
    base = Path(home) if home is not None else Path(os.environ.get("HOME") or Path.home())
    return base / ".predictivegrid" / "credentials.yaml"


def parse_endpoint(text: str, *, what: str = "endpoint") -> tuple[Endpoint, bool | None]:
    """Parse ``host:port``, ``[v6]:port`` or ``scheme://host:port``.

    Returns
    -------
    tuple
        The endpoint, and the TLS choice a scheme implies (None when there is no scheme).

    Raises
    ------
    InvalidArgumentError
        When the text is not of that form; the message shows what was received.
    """
    if not isinstance(text, str):
        raise InvalidArgumentError(f"{what} must be a 'host:port' string, got {type(text).__name__}")
    raw = text.strip()
    tls: bool | None = None
    if "://" in raw:
        scheme, _, raw = raw.partition("://")
        if scheme.lower() not in _TLS_SCHEMES:
            raise InvalidArgumentError(
                f"{what} {text!r} has an unknown scheme {scheme!r}; use one of "
                f"{', '.join(sorted(_TLS_SCHEMES))} or none"
            )
        tls = _TLS_SCHEMES[scheme.lower()]
        raw = raw.rstrip("/")
    if "," in raw:
        raw = raw.split(",", 1)[0].strip()  # BTRDB_ENDPOINTS may list several; the first is used.
    match = _ENDPOINT.match(raw)
    if match is None:
        raise InvalidArgumentError(
            f"{what} {text!r} is not of the form 'host:port' (or '[ipv6]:port'), e.g. 'example.com:4411'"
        )
    port = int(match["port"])
    if not 0 < port < 65536:
        raise InvalidArgumentError(f"{what} {text!r} has port {port}, outside 1..65535")
    return Endpoint(match["v6"] or match["host"], port), tls


def load_profile(name: str, *, required: bool, home: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Read one profile's ``btrdb`` section from the credentials file.

    Parameters
    ----------
    name
        The profile name.
    required
        When False, a missing file or missing profile gives ``{}`` instead of an error.
    home
        The home directory (default ``$HOME``).

    Returns
    -------
    dict
        The profile's keys: ``endpoints``, ``apikey`` (the file's ``api_key``), and optionally
        ``tls``, ``ca_bundle``, ``concurrency_limit``. Keys whose value is null are dropped.
    """
    path = credentials_path(home)
    if not path.is_file():
        if not required:
            return {}
        raise CredentialsFileNotFound(
            f"profile {name!r} was asked for, but the credentials file {path} does not exist; create it "
            f"(see pingthings.timeseries.config) or pass endpoint= and apikey= instead"
        )
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CredentialsError(f"cannot read the credentials file {path}: {exc}") from exc
    if not isinstance(content, Mapping):
        raise CredentialsError(f"the credentials file {path} must map profile names to settings")
    entry = content.get(name)
    if entry is None:
        if not required:
            return {}
        known = ", ".join(repr(str(k)) for k in content) or "none"
        raise ProfileNotFound(
            f"profile {name!r} is not in {path} (profiles there: {known}); fix the profile name "
            f"(profile= argument or ${ENV_PROFILE})"
        )
    section = entry.get("btrdb", entry) if isinstance(entry, Mapping) else None
    if not isinstance(section, Mapping):
        raise CredentialsError(f"profile {name!r} in {path} must have a 'btrdb:' mapping with 'endpoints'")
    out: dict[str, Any] = {}
    for key, value in section.items():
        if value is None:
            continue
        out["apikey" if key == "api_key" else str(key)] = value
    return out


def _looks_like_endpoint(text: str) -> bool:
    try:
        parse_endpoint(text)
    except InvalidArgumentError:
        return False
    return True


def _parse_limit(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise InvalidArgumentError(
            f"concurrency limit from {where} must be a positive integer, got {value!r}"
        )
    try:
        limit = int(str(value).strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(
            f"concurrency limit from {where} must be a positive integer, got {value!r}"
        ) from None
    if limit != value and not isinstance(value, str):
        raise InvalidArgumentError(f"concurrency limit from {where} must be an integer, got {value!r}")
    if limit < 1:
        raise InvalidArgumentError(f"concurrency limit from {where} must be at least 1, got {limit}")
    return limit


def _parse_compression(value: Any, where: str) -> str | None:
    """``"gzip"`` or None from a compression setting (``gzip``, ``none``/``identity``/empty)."""
    text = value.strip().lower() if isinstance(value, str) else value
    if text in ("", "none", "identity", None):
        return None
    if text == "gzip":
        return "gzip"
    raise InvalidArgumentError(f"compression from {where} must be 'gzip' or 'none', got {value!r}")


def _parse_tls(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "yes", "1", "false", "no", "0"}:
        return value.strip().lower() in {"true", "yes", "1"}
    raise InvalidArgumentError(f"tls from {where} must be true or false, got {value!r}")


def resolve_settings(
    profile: str | None = None,
    endpoint: str | None = None,
    apikey: str | None = None,
    concurrency_limit: int | None = None,
    *,
    tls: bool | None = None,
    ca_bundle: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    home: str | os.PathLike[str] | None = None,
    compression: str | None = None,
) -> ConnectionSettings:
    """Resolve the connection settings (see the module docstring for the order).

    Parameters
    ----------
    profile, endpoint, apikey, concurrency_limit
        As in :func:`pingthings.timeseries.connect`. A ``profile`` that looks like ``host:port``
        while ``endpoint`` is None is taken as the endpoint, so ``connect("host:4411", apikey=k)``
        works as in the quick start.
    tls
        Force TLS on or off; None follows the endpoint scheme, the profile, then the port (4411).
    ca_bundle
        PEM file of CA certificates to trust for TLS (default ``$BTRDB_CA_BUNDLE``).
    environ, home
        The environment and home directory to read (default: the process's).
    compression
        ``"gzip"`` to compress requests (default: the profile's ``compression`` key, else
        ``$PINGTHINGS_COMPRESSION``, else none); ``"none"`` turns it off explicitly.

    Raises
    ------
    CredentialsError
        When no endpoint can be found, or the credentials file or profile is missing or malformed.
    InvalidArgumentError
        When an endpoint or limit is malformed.
    """
    env = os.environ if environ is None else environ
    if profile is not None and not isinstance(profile, str):
        raise InvalidArgumentError(f"profile must be a str, got {type(profile).__name__}")
    if profile is not None and endpoint is None and _looks_like_endpoint(profile):
        profile, endpoint = None, profile
    if apikey is not None and not isinstance(apikey, str):
        raise InvalidArgumentError(f"apikey must be a str, got {type(apikey).__name__}")

    explicit = load_profile(profile, required=True, home=home) if profile is not None else {}
    implicit_name = env.get(ENV_PROFILE) or DEFAULT_PROFILE
    implicit: dict[str, Any] = {}
    if profile is None:
        implicit = load_profile(implicit_name, required=implicit_name != DEFAULT_PROFILE, home=home)

    # Endpoint and key travel together from whichever source supplies the endpoint.
    ep_text: Any
    if endpoint is not None:
        ep_text, source = endpoint, "the endpoint argument"
        key = apikey if apikey is not None else env.get(ENV_API_KEY) or None
        section: Mapping[str, Any] = {}
    elif explicit:
        ep_text, source, section = explicit.get("endpoints"), f"profile {profile!r}", explicit
        key = apikey if apikey is not None else explicit.get("apikey")
        if ep_text is None:
            raise CredentialsError(f"profile {profile!r} has no 'endpoints' entry under 'btrdb:'")
    elif env.get(ENV_ENDPOINTS):
        ep_text, source, section = env[ENV_ENDPOINTS], f"${ENV_ENDPOINTS}", {}
        key = apikey if apikey is not None else env.get(ENV_API_KEY) or None
    elif implicit.get("endpoints"):
        ep_text, source, section = implicit["endpoints"], f"profile {implicit_name!r}", implicit
        key = apikey if apikey is not None else implicit.get("apikey")
    else:
        raise CredentialsError(
            "no endpoint to connect to: pass endpoint='host:port' (and apikey=), set "
            f"${ENV_ENDPOINTS} (and ${ENV_API_KEY}), or add a profile to {credentials_path(home)} "
            f"and pass profile= or set ${ENV_PROFILE}"
        )

    parsed, scheme_tls = parse_endpoint(str(ep_text), what=f"endpoint from {source}")
    if tls is None:
        tls = scheme_tls
    if tls is None and "tls" in section:
        tls = _parse_tls(section["tls"], source)
    if tls is None:
        tls = parsed.port == TLS_PORT

    bundle = ca_bundle if ca_bundle is not None else section.get("ca_bundle") or env.get(ENV_CA_BUNDLE)
    if bundle is not None:
        bundle = os.fspath(bundle)
        if tls and not Path(bundle).is_file():
            raise CredentialsError(f"the CA bundle {bundle!r} (ca_bundle / ${ENV_CA_BUNDLE}) is not a file")

    if concurrency_limit is not None:
        limit = _parse_limit(concurrency_limit, "the concurrency_limit argument")
    elif "concurrency_limit" in explicit:
        limit = _parse_limit(explicit["concurrency_limit"], f"profile {profile!r}")
    elif env.get(ENV_CONCURRENCY_LIMIT):
        limit = _parse_limit(env[ENV_CONCURRENCY_LIMIT], f"${ENV_CONCURRENCY_LIMIT}")
    elif "concurrency_limit" in implicit:
        limit = _parse_limit(implicit["concurrency_limit"], f"profile {implicit_name!r}")
    else:
        limit = DEFAULT_CONCURRENCY_LIMIT

    if compression is not None:
        packing = _parse_compression(compression, "the compression argument")
    elif "compression" in explicit:
        packing = _parse_compression(explicit["compression"], f"profile {profile!r}")
    elif env.get(ENV_COMPRESSION):
        packing = _parse_compression(env[ENV_COMPRESSION], f"${ENV_COMPRESSION}")
    elif "compression" in implicit:
        packing = _parse_compression(implicit["compression"], f"profile {implicit_name!r}")
    else:
        packing = None

    if key is not None and not isinstance(key, str):
        key = str(key)
    return ConnectionSettings(
        endpoint=parsed,
        apikey=key or None,
        tls=bool(tls),
        ca_bundle=bundle if tls else None,
        concurrency_limit=limit,
        source=source,
        compression=packing,
    )


def parse_concurrency_limit(value: Any) -> int:
    """Check a concurrency limit set on a live client (a positive integer)."""
    return _parse_limit(value, "concurrency_limit")
