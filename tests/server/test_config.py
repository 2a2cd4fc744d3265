"""Server configuration: listen addresses, the public-address guard, keys files, CLI flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from pingthings.server.__main__ import build_parser, config_from_args
from pingthings.server.config import (
    DEFAULT_LISTEN,
    ConfigError,
    ServerConfig,
    is_loopback,
    load_keys_file,
    normalize_keys,
    parse_listen,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:4410", ("127.0.0.1", 4410)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:4411", ("::1", 4411)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["4410", ":4410", "host:port", "host:70000"])
def test_parse_listen_rejects(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_listen(text)


def test_loopback_detection() -> None:
    assert (
        is_loopback("127.0.0.1")
        and is_loopback("::1")
        and is_loopback("localhost")
        and is_loopback("127.9.9.9")
    )
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.1.2.3")
    assert not is_loopback("example.com")


def test_public_address_needs_keys_or_explicit_permission(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="without API keys"):
        ServerConfig(tmp_path, listen="0.0.0.0:4410")
    assert ServerConfig(tmp_path, listen="0.0.0.0:4410", api_keys={"k": False}).api_keys
    assert ServerConfig(tmp_path, listen="0.0.0.0:4410", allow_insecure_public=True).allow_insecure_public
    assert ServerConfig(tmp_path).listen == DEFAULT_LISTEN == "127.0.0.1:4410"


def test_tls_needs_both_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="both"):
        ServerConfig(tmp_path, tls_cert=tmp_path / "c.pem")


def test_keys_file_formats(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text("- key: plain\n- key: boss\n  admin: true\n- bare\n")
    assert load_keys_file(path) == {"plain": False, "boss": True, "bare": False}
    path.write_text("keys:\n  - key: k\n    admin: false\n")
    assert load_keys_file(path) == {"k": False}


@pytest.mark.parametrize("content", ["", "{}", "- {admin: true}\n", "- key: k\n  colour: red\n", "[unclosed"])
def test_bad_keys_files_say_what_is_wrong(tmp_path: Path, content: str) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=str(path)):
        load_keys_file(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_keys_file(tmp_path / "missing.yaml")


def test_normalize_keys() -> None:
    assert normalize_keys(["a", "b"]) == {"a": False, "b": False}
    assert normalize_keys({"a": True}) == {"a": True}
    assert normalize_keys("solo") == {"solo": False}
    with pytest.raises(ConfigError):
        normalize_keys([" padded "])


def test_command_line_flags(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text("- key: admin-key\n  admin: true\n")
    args = build_parser().parse_args(
        ["--data", str(tmp_path), "--listen", "127.0.0.1:5000", "--keys-file", str(keys)]
    )
    config = config_from_args(args)
    assert (
        config.data_dir == tmp_path
        and config.listen == "127.0.0.1:5000"
        and config.api_keys == {"admin-key": True}
    )
    args = build_parser().parse_args(["--data", str(tmp_path), "--api-key", "k", "--listen", "0.0.0.0:1"])
    assert config_from_args(args).api_keys == {"k": False}
    args = build_parser().parse_args(
        ["--data", str(tmp_path), "--listen", "0.0.0.0:1", "--allow-unauthenticated-public"]
    )
    assert config_from_args(args).allow_insecure_public
