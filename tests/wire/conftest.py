"""Fixtures for the wire codec tests: a google-protobuf build of our own .proto as the oracle."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

PROTO = Path(__file__).resolve().parents[2] / "protos" / "btrdb" / "v5api" / "btrdb.proto"


@pytest.fixture(scope="session")
def pb(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """google protobuf classes generated at test time from protos/btrdb/v5api/btrdb.proto.

    The package is renamed so that the descriptors cannot clash with the official client's
    ``v5api`` module if both are loaded in one process; field numbers and types are unchanged.
    ``Status.mash`` is left out: the point codecs never read it and skip it as an unknown field, so
    the oracle must too (with it, upb rejects a corrupt mash that the codecs rightly ignore, e.g.
    ``0a 03 1a 01 30``).
    """
    out = tmp_path_factory.mktemp("pb")
    source = PROTO.read_text().replace("package v5api;", "package pingthings_wire_oracle;")
    assert "  Mash mash = 3;\n" in source
    source = source.replace("  Mash mash = 3;\n", "  reserved 3;  // mash: skipped by the codecs\n", 1)
    (out / "wire_oracle.proto").write_text(source)
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{out}", f"--python_out={out}", "wire_oracle.proto"],
        check=True,
        capture_output=True,
    )
    spec = importlib.util.spec_from_file_location("wire_oracle_pb2", out / "wire_oracle_pb2.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
