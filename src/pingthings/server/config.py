"""Configuration of the embedded server: where data lives, where it listens, keys and TLS."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pingthings.server.engine.buffering import Buffering
from pingthings.server.engine.cache_size import default_cache_bytes
from pingthings.server.limits import (
    DEFAULT_CSV_SECONDS,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_SQL_BYTES,
    DEFAULT_MAX_STREAMS_PER_REQUEST,
    DEFAULT_SHUTDOWN_GRACE,
    DEFAULT_SQL_SECONDS,
)
from pingthings.server.service.state import DEFAULT_MAX_INSERT_POINTS

#: Compressions the server can apply to replies (``compression`` setting).
REPLY_COMPRESSIONS = ("gzip",)

#: Default budget of the engine's decoded-block cache, in MiB: a quarter of this machine's memory,
#: at least 256 MiB and at most 16 GiB (see :mod:`pingthings.server.engine.cache_size`).
DEFAULT_CACHE_MB = default_cache_bytes() >> 20

#: Where ``pingthings serve`` listens unless told otherwise (plaintext BTrDB port, loopback only).
DEFAULT_LISTEN = "127.0.0.1:4410"


class ConfigError(ValueError):
    """The server configuration is unusable; the message says which setting and why."""


@dataclass
class ServerConfig:
    """Everything needed to run a server.

    Attributes
    ----------
    data_dir
        Directory holding ``engine.sqlite`` and ``metadata.sqlite`` (created if missing).
    listen
        ``HOST:PORT`` to bind; port 0 picks a free port.
    api_keys
        Accepted API keys, each mapped to its admin flag. Empty: no authentication.
    tls_cert, tls_key
        PEM certificate chain and private key; both or neither.
    allow_insecure_public
        Permit listening on a non-loopback address without API keys.
    retention_interval
        Seconds between two retention passes.
    clock
        Wall clock in ns since the epoch (injectable for tests of retention).
    max_insert_points
        Largest Insert accepted (larger ones get 414).
    shutdown_grace
        Seconds in-flight calls get to finish when the server stops.
    advertise
        ``HOST:PORT`` that Info reports as the proxy endpoint (what Go clients then dial). Default:
        the listen address, with a wildcard host replaced by this machine's host name.
    cache_mb
        MiB of decoded blocks the engine keeps in memory (0 disables the cache). Default: a quarter of
        the machine's memory, at least 256 MiB and at most 16 GiB.
    read_workers
        Most streamed reads computing their next reply at once; the others queue. None: one per CPU
        core (at least 2).
    compression
        ``"gzip"``: compress replies for clients that accept gzip (their ``grpc-accept-encoding``
        says so). None (default): replies go uncompressed, which on loopback and fast links only
        saves CPU. Compressed requests are read either way.
    max_message_bytes
        Largest request message accepted, judged from its gRPC length prefix before any of it is
        read (larger ones get 421 and a stream reset).
    max_sql_bytes
        Longest ``sql_query`` text in UTF-8 bytes, checked before parsing (values belong in ``$N``
        parameters).
    max_streams_per_request
        Most distinct streams one ArrowMultiValues or GenerateCSV request may name (repeated
        uuids count once).
    sql_seconds, csv_seconds
        Time budget of one ``sql_query`` (past it: 441) and of one GenerateCSV request (past it:
        426, after the rows already sent).
    buffering
        When small inserts are merged into the tree (see :class:`~pingthings.server.engine.Buffering`);
        None commits every insert as its own version.
    """

    data_dir: Path
    listen: str = DEFAULT_LISTEN
    api_keys: dict[str, bool] = field(default_factory=dict)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allow_insecure_public: bool = False
    retention_interval: float = 3600.0
    clock: Callable[[], int] = time.time_ns
    max_insert_points: int = DEFAULT_MAX_INSERT_POINTS
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    advertise: str | None = None
    cache_mb: int = DEFAULT_CACHE_MB
    read_workers: int | None = None
    compression: str | None = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_sql_bytes: int = DEFAULT_MAX_SQL_BYTES
    max_streams_per_request: int = DEFAULT_MAX_STREAMS_PER_REQUEST
    sql_seconds: float = DEFAULT_SQL_SECONDS
    csv_seconds: float = DEFAULT_CSV_SECONDS
    buffering: Buffering | None = field(default_factory=Buffering)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("TLS needs both a certificate (--tls-cert) and a private key (--tls-key)")
        host, _ = parse_listen(self.listen)
        if not self.api_keys and not self.allow_insecure_public and not is_loopback(host):
            raise ConfigError(
                f"refusing to listen on {host!r} without API keys: anyone on the network could read and "
                "write your data. Configure --api-key/--keys-file, listen on 127.0.0.1, or pass "
                "--allow-unauthenticated-public (allow_insecure_public=True) if you really mean it."
            )
        if self.advertise is not None:
            parse_listen(self.advertise)
        if self.max_insert_points < 1:
            raise ConfigError("max_insert_points must be at least 1")
        if self.retention_interval <= 0:
            raise ConfigError("retention_interval must be positive")
        if not _whole_at_least(self.cache_mb, 0):
            raise ConfigError(f"cache_mb must be a whole number of MiB, 0 or more (got {self.cache_mb!r})")
        if self.compression is not None and self.compression not in REPLY_COMPRESSIONS:
            raise ConfigError(f"compression must be 'gzip' or None (none), got {self.compression!r}")
        if self.read_workers is not None and not _whole_at_least(self.read_workers, 1):
            raise ConfigError(f"read_workers must be a whole number, 1 or more (got {self.read_workers!r})")
        for name in ("sql_seconds", "csv_seconds"):
            budget = getattr(self, name)
            if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
                raise ConfigError(f"{name} must be a positive number of seconds (got {budget!r})")
        for name in ("max_message_bytes", "max_sql_bytes", "max_streams_per_request"):
            if not _whole_at_least(getattr(self, name), 1):
                raise ConfigError(f"{name} must be a whole number, 1 or more (got {getattr(self, name)!r})")

    @property
    def cache_bytes(self) -> int:
        """The engine cache budget in bytes."""
        return self.cache_mb << 20

    @property
    def tls_enabled(self) -> bool:
        """Whether the server speaks TLS."""
        return self.tls_cert is not None


def _whole_at_least(value: object, least: int) -> bool:
    """Whether ``value`` is an int (not a bool) of at least ``least``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def parse_listen(listen: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6addr]:PORT`` for IPv6) into host and port."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"listen address {listen!r} must look like HOST:PORT, e.g. 127.0.0.1:4410")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"listen address {listen!r} has a non-numeric port {port_text!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"listen port {port} is outside 0..65535")
    return host, port


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost`` or a loopback address)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_keys(keys: Mapping[str, bool] | Iterable[str] | None) -> dict[str, bool]:
    """Turn a key list (non-admin) or a key → admin mapping into a key → admin dict."""
    if keys is None:
        return {}
    if isinstance(keys, str):
        keys = [keys]
    result = dict(keys.items()) if isinstance(keys, Mapping) else dict.fromkeys(keys, False)
    for key in result:
        if not isinstance(key, str) or not key.strip() or key != key.strip():
            raise ConfigError("API keys must be non-empty strings without surrounding whitespace")
    return {key: bool(admin) for key, admin in result.items()}


def load_keys_file(path: str | Path) -> dict[str, bool]:
    """Read a YAML keys file.

    The file holds a list; each entry is either a key string or a mapping ``{key: ..., admin: true}``
    (``admin`` optional, default false). A top-level ``{keys: [...]}`` mapping is accepted too.
    """
    path = Path(path)
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read keys file {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"keys file {path} is not valid YAML: {exc}") from None
    if isinstance(document, Mapping) and "keys" in document:
        document = document["keys"]
    if not isinstance(document, list) or not document:
        raise ConfigError(f"keys file {path} must hold a non-empty list of keys")
    keys: dict[str, bool] = {}
    for index, entry in enumerate(document):
        if isinstance(entry, str):
            keys[entry] = False
        elif isinstance(entry, Mapping) and isinstance(entry.get("key"), str):
            unknown = set(entry) - {"key", "admin", "name", "description"}
            if unknown:
                raise ConfigError(f"keys file {path}, entry {index}: unknown fields {sorted(unknown)}")
            keys[entry["key"]] = bool(entry.get("admin", False))
        else:
            raise ConfigError(
                f"keys file {path}, entry {index}: expected a key string or {{key: ..., admin: ...}}"
            )
    return normalize_keys(keys)
