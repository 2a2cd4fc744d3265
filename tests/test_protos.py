"""The committed betterproto2 code must match the .proto sources."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_generated_code_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_protos.py"), "--check"],
        capture_output=True,
        text=True,
    )
    hint = "regenerate with `python tools/gen_protos.py`"
    assert result.returncode == 0, f"{hint}:\n{result.stdout}{result.stderr}"


def test_v5_service_paths() -> None:
    from pingthings._proto import v5api

    mapping = v5api.BTrDbBase().__mapping__()
    assert "/v5api.BTrDB/RawValues" in mapping
    assert "/v5api.BTrDB/Subscribe" in mapping
    assert len(mapping) == 26
