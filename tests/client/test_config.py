"""Connection settings: arguments, environment and the credentials file, in that order."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pingthings.timeseries.config import (
    DEFAULT_CONCURRENCY_LIMIT,
    credentials_path,
    parse_endpoint,
    resolve_settings,
)
from pingthings.timeseries.exceptions import (
    CredentialsError,
    CredentialsFileNotFound,
    InvalidArgumentError,
    ProfileNotFound,
)

ENV_NAMES = (
    "BTRDB_ENDPOINTS",
    "BTRDB_API_KEY",
    "BTRDB_PROFILE",
    "BTRDB_CA_BUNDLE",
    "PINGTHINGS_CONCURRENCY_LIMIT",
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME and a clean environment."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def write_profiles(home: Path, profiles: dict[str, dict[str, object]]) -> Path:
    path = credentials_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {name: {"name": name, "btrdb": section} for name, section in profiles.items()}
    path.write_text(yaml.safe_dump(content))
    return path


def test_credentials_file_location(home: Path) -> None:
    assert credentials_path() == home / ".predictivegrid" / "credentials.yaml"


@pytest.mark.parametrize(
    ("text", "host", "port", "tls"),
    [
        ("example.com:4411", "example.com", 4411, None),
        ("10.0.0.1:4410", "10.0.0.1", 4410, None),
        ("[::1]:4410", "::1", 4410, None),
        ("[fe80::1%eth0]:5000", "fe80::1%eth0", 5000, None),
        ("https://example.com:443", "example.com", 443, True),
        ("grpc://example.com:4411", "example.com", 4411, False),
        ("a.example:1, b.example:2", "a.example", 1, None),
    ],
)
def test_parse_endpoint_accepts(text: str, host: str, port: int, tls: bool | None) -> None:
    endpoint, scheme_tls = parse_endpoint(text)
    assert (endpoint.host, endpoint.port, scheme_tls) == (host, port, tls)
    assert parse_endpoint(str(endpoint))[0] == endpoint


@pytest.mark.parametrize(
    "text",
    [
        "example.com",
        ":4411",
        "example.com:",
        "example.com:http",
        "::1:4410",
        "host:70000",
        "ftp://host:1",
        "",
        "host:0",
    ],
)
def test_parse_endpoint_rejects_with_the_text(text: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        parse_endpoint(text)
    assert repr(text) in str(info.value)


def test_arguments_only(home: Path) -> None:
    settings = resolve_settings(endpoint="example.com:4411", apikey="ABC123")
    assert str(settings.endpoint) == "example.com:4411"
    assert settings.apikey == "ABC123"
    assert settings.tls is True  # port 4411 means TLS
    assert settings.concurrency_limit == DEFAULT_CONCURRENCY_LIMIT


def test_quick_start_positional_endpoint(home: Path) -> None:
    settings = resolve_settings("192.168.1.101:4411", apikey="123456789123456789")
    assert (settings.endpoint.host, settings.endpoint.port, settings.apikey) == (
        "192.168.1.101",
        4411,
        "123456789123456789",
    )


def test_tls_follows_port_unless_overridden(home: Path) -> None:
    assert resolve_settings(endpoint="h:4410").tls is False
    assert resolve_settings(endpoint="h:4410", tls=True).tls is True
    assert resolve_settings(endpoint="h:4411", tls=False).tls is False
    assert resolve_settings(endpoint="https://h:4410").tls is True


def test_environment(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BTRDB_ENDPOINTS", "env.example:4410")
    monkeypatch.setenv("BTRDB_API_KEY", "envkey")
    monkeypatch.setenv("PINGTHINGS_CONCURRENCY_LIMIT", "7")
    settings = resolve_settings()
    assert (str(settings.endpoint), settings.apikey, settings.concurrency_limit) == (
        "env.example:4410",
        "envkey",
        7,
    )
    # explicit arguments win over the environment
    settings = resolve_settings(endpoint="arg.example:1", apikey="argkey", concurrency_limit=3)
    assert (str(settings.endpoint), settings.apikey, settings.concurrency_limit) == (
        "arg.example:1",
        "argkey",
        3,
    )


def test_environment_beats_default_profile(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_profiles(home, {"default": {"endpoints": "file.example:4410", "api_key": "filekey"}})
    assert str(resolve_settings().endpoint) == "file.example:4410"
    assert resolve_settings().apikey == "filekey"
    monkeypatch.setenv("BTRDB_ENDPOINTS", "env.example:4410")
    settings = resolve_settings()
    assert str(settings.endpoint) == "env.example:4410"
    assert settings.apikey is None  # the file's key is never sent to another server


def test_named_profile(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_profiles(
        home,
        {
            "default": {"endpoints": "default.example:4411", "api_key": "k0"},
            "research": {"endpoints": "research.example:4411", "api_key": "k1", "concurrency_limit": 5},
        },
    )
    monkeypatch.setenv("BTRDB_ENDPOINTS", "env.example:4410")
    monkeypatch.setenv("BTRDB_API_KEY", "envkey")
    settings = resolve_settings(profile="research")
    assert (str(settings.endpoint), settings.apikey, settings.concurrency_limit) == (
        "research.example:4411",
        "k1",
        5,
    )
    assert settings.tls is True
    monkeypatch.delenv("BTRDB_ENDPOINTS")
    monkeypatch.setenv("BTRDB_PROFILE", "research")
    assert str(resolve_settings().endpoint) == "research.example:4411"


def test_missing_profile_names_it_and_lists_the_others(home: Path) -> None:
    write_profiles(home, {"default": {"endpoints": "d:1"}, "other": {"endpoints": "o:1"}})
    with pytest.raises(ProfileNotFound) as info:
        resolve_settings(profile="nope")
    text = str(info.value)
    assert "'nope'" in text and "'other'" in text and "'default'" in text


def test_profile_from_environment_must_exist(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_profiles(home, {"default": {"endpoints": "d:1"}})
    monkeypatch.setenv("BTRDB_PROFILE", "ghost")
    with pytest.raises(ProfileNotFound, match="BTRDB_PROFILE"):
        resolve_settings()


def test_missing_credentials_file_when_profile_asked(home: Path) -> None:
    with pytest.raises(CredentialsFileNotFound) as info:
        resolve_settings(profile="research")
    assert isinstance(info.value, FileNotFoundError)
    assert str(credentials_path(home)) in str(info.value)


def test_nothing_configured_says_what_to_set(home: Path) -> None:
    with pytest.raises(CredentialsError) as info:
        resolve_settings()
    text = str(info.value)
    for hint in ("endpoint=", "BTRDB_ENDPOINTS", "BTRDB_API_KEY", "profile=", "credentials.yaml"):
        assert hint in text


def test_malformed_endpoint_names_its_source(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BTRDB_ENDPOINTS", "no-port-here")
    with pytest.raises(InvalidArgumentError, match=r"BTRDB_ENDPOINTS.*'no-port-here'"):
        resolve_settings()


@pytest.mark.parametrize("bad", ["0", "-3", "many", "2.5"])
def test_bad_concurrency_limit_from_environment(
    home: Path, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv("PINGTHINGS_CONCURRENCY_LIMIT", bad)
    with pytest.raises(InvalidArgumentError, match="PINGTHINGS_CONCURRENCY_LIMIT"):
        resolve_settings(endpoint="h:1")


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "x"])
def test_bad_concurrency_limit_argument(home: Path, bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="concurrency"):
        resolve_settings(endpoint="h:1", concurrency_limit=bad)  # type: ignore[arg-type]


def test_ca_bundle_from_environment_must_exist_for_tls(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BTRDB_CA_BUNDLE", str(home / "missing.pem"))
    with pytest.raises(CredentialsError, match=r"missing\.pem"):
        resolve_settings(endpoint="h:4411")
    assert resolve_settings(endpoint="h:4410").ca_bundle is None  # plaintext: the bundle is irrelevant
    bundle = home / "ca.pem"
    bundle.write_text("not checked here")
    monkeypatch.setenv("BTRDB_CA_BUNDLE", str(bundle))
    assert resolve_settings(endpoint="h:4411").ca_bundle == str(bundle)


def test_unreadable_yaml_is_reported(home: Path) -> None:
    path = credentials_path(home)
    path.parent.mkdir(parents=True)
    path.write_text("default: [unclosed")
    with pytest.raises(CredentialsError, match="credentials file"):
        resolve_settings(profile="default")
