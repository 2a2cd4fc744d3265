"""The call path's lower layers depend on small protocols, not on the classes above them (issue 18):
no import of the client class from the call plumbing, the data calls or the stream, and none of the channel
from the call objects, not even for type hints."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pingthings.timeseries

PACKAGE = Path(pingthings.timeseries.__file__).parent

FORBIDDEN = {
    "_rpc.py": {"pingthings.timeseries.async_client", "pingthings.timeseries.async_stream"},
    "_data_calls.py": {"pingthings.timeseries.async_client", "pingthings.timeseries.async_stream"},
    "async_stream.py": {"pingthings.timeseries.async_client"},
    "transport/calls.py": {"pingthings.timeseries.transport.channel", ".channel"},
    "transport/errors.py": {"pingthings.timeseries.exceptions"},
}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_upper_ones(module: str) -> None:
    assert not imported_modules(PACKAGE / module) & FORBIDDEN[module]


def test_grpc_status_codes_live_in_one_place() -> None:
    from pingthings.timeseries.transport import GrpcStatus
    from pingthings.wire.grpc_status import GrpcStatus as WireStatus

    assert GrpcStatus is WireStatus
    exceptions_source = (PACKAGE / "exceptions.py").read_text(encoding="utf-8")
    assert "_GRPC_" not in exceptions_source and "= 14" not in exceptions_source


def test_no_probe_stand_in_for_error_translation() -> None:
    assert "_Probe" not in (PACKAGE / "async_client.py").read_text(encoding="utf-8")
    assert "getattr(client" not in (PACKAGE / "_data_calls.py").read_text(encoding="utf-8")
