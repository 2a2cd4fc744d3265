"""The package's import graph: lower layers do not import upper ones, and no new import cycles.

Every ``import`` statement counts, including those under ``if TYPE_CHECKING:`` and inside functions:
a type-only import still couples the modules. The graph is read from the source (nothing is imported).

Layers, lowest first: ``pingthings.fastpaths`` (imports nothing of ours); ``pingthings.wire`` (shared
by client and server); the server (``engine`` and ``metadata`` below ``service``, ``app`` and
``runtime``) and the client transport; the client's async API; its sync faces; ``cli`` and ``demo``.

To tighten a rule, edit the tables. ``PENDING_CYCLES`` is empty: the cycles the call-path work
removed (async_client <-> async_stream <-> _data_calls, transport channel <-> calls) and the ones of
the subscription and export modules (which now take small Protocols) stay gone. The call plumbing
below the API classes depends on ``_rpc.CallTarget``, never on the classes themselves.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

SOURCE = Path(__file__).resolve().parent.parent / "src"
GENERATED = "pingthings._proto"

#: importer (a package or module) -> packages and modules it must not import, and why.
MAY_NOT_IMPORT: dict[str, tuple[tuple[str, ...], str]] = {
    **{
        f"pingthings.timeseries.{low}": (
            (
                "pingthings.timeseries.async_client",
                "pingthings.timeseries.async_stream",
                "pingthings.timeseries.async_streamset",
                "pingthings.timeseries.client",
            ),
            "the call plumbing takes a CallTarget (or a small Protocol), not the API classes above it",
        )
        for low in (
            "_rpc",
            "_data_calls",
            "_endpoints",
            "_insert_batches",
            "_collections",
            "_platform_rpc",
            "_platform_api",
            "live",
            "export",
        )
    },
    "pingthings.wire": (
        ("pingthings.timeseries", "pingthings.server", "pingthings.cli", "pingthings.demo"),
        "wire is shared by client and server and sits below both",
    ),
    "pingthings.server": (
        ("pingthings.timeseries", "pingthings.cli", "pingthings.demo"),
        "the server never depends on the client or the command line",
    ),
    "pingthings.server.engine": (
        (
            "pingthings.server.service",
            "pingthings.server.metadata",
            "pingthings.server.app",
            "pingthings.server.runtime",
        ),
        "the storage engine knows nothing of gRPC or metadata",
    ),
    "pingthings.server.metadata": (
        (
            "pingthings.server.service",
            "pingthings.server.engine",
            "pingthings.server.app",
            "pingthings.server.runtime",
        ),
        "the metadata store knows nothing of gRPC or point data",
    ),
    "pingthings.timeseries": (
        ("pingthings.server", "pingthings.cli", "pingthings.demo"),
        "the client never depends on the server or the command line",
    ),
    "pingthings.timeseries.transport": (
        tuple(
            f"pingthings.timeseries.{name}"
            for name in (
                "async_client",
                "async_stream",
                "async_streamset",
                "client",
                "stream",
                "streamset",
                "_data_calls",
                "_rpc",
                "event_loop",
                "exceptions",
                "config",
            )
        ),
        "the transport is a gRPC channel; the API is built on it, never the other way",
    ),
    **{
        f"pingthings.timeseries.{name}": (
            (
                "pingthings.timeseries.client",
                "pingthings.timeseries.stream",
                "pingthings.timeseries.streamset",
                "pingthings.timeseries.event_loop",
                "pingthings.timeseries.sync_connection",
            ),
            "the async API is written once; the sync faces are built on it",
        )
        for name in (
            "async_client",
            "async_stream",
            "async_streamset",
            "_data_calls",
            "_rpc",
            "_insert",
            "_fanout",
            "_metadata",
            "_platform_codec",
            "_results",
            "_align",
            "_filters",
        )
    },
}

#: importer -> the only packages and modules of ours it may import (besides its own package).
MAY_ONLY_IMPORT: dict[str, tuple[str, ...]] = {
    "pingthings.fastpaths": (),
    "pingthings.wire": (GENERATED,),
    "pingthings.timeseries.transport": ("pingthings", "pingthings.fastpaths", "pingthings.wire"),
    "pingthings.server.engine": ("pingthings.server.errors", "pingthings.wire", "pingthings.fastpaths"),
    "pingthings.server.metadata": ("pingthings.server.errors", "pingthings.wire"),
}

#: Import cycles still present, each waiting for the work named in the module docstring.
PENDING_CYCLES: list[frozenset[str]] = []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (generated code neither checked nor followed)."""
    paths = {_module_name(p): p for p in SOURCE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        if _within(module, GENERATED):
            continue
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1]
                    target = ".".join([*base, node.module] if node.module else base)
                else:
                    target = node.module or ""
                for alias in node.names:  # ``from package import module`` imports the module
                    submodule = f"{target}.{alias.name}"
                    targets.add(submodule if submodule in paths else target)
        graph[module] = {t for t in targets if _within(t, "pingthings") and t != module}
    return graph


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_graph_is_read() -> None:
    graph = _import_graph()
    assert "pingthings.wire.devices" in graph["pingthings.server.metadata.devices"]
    assert (
        "pingthings.timeseries.transport.http2_client" in graph["pingthings.timeseries.transport.connection"]
    )


def test_no_module_imports_a_layer_above_it() -> None:
    graph = _import_graph()
    problems = []
    for importer, (forbidden, reason) in MAY_NOT_IMPORT.items():
        for module, targets in graph.items():
            if not _within(module, importer):
                continue
            for target in sorted(targets):
                if any(_within(target, f) for f in forbidden):
                    problems.append(f"{module} imports {target}: {reason}")
    assert not problems, "\n".join(problems)


def test_low_layers_import_only_what_lies_below_them() -> None:
    graph = _import_graph()
    problems = []
    for importer, allowed in MAY_ONLY_IMPORT.items():
        for module, targets in graph.items():
            if not _within(module, importer):
                continue
            for target in sorted(targets):
                if (
                    not _within(target, importer)
                    and target not in allowed
                    and not any(_within(target, a) for a in allowed if a != "pingthings")
                ):
                    problems.append(f"{module} imports {target}; {importer} may import only {allowed}")
    assert not problems, "\n".join(problems)


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next((c for c in children if c in graph), None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_cycle_detection_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [frozenset({"a", "b", "c"})]


def test_no_import_cycles_beyond_the_pending_ones() -> None:
    new = [sorted(c) for c in _cycles(_import_graph()) if not any(c <= pending for pending in PENDING_CYCLES)]
    assert not new, f"import cycles: {new}"


def test_the_client_and_its_streams_import_each_other_no_more() -> None:
    graph = _import_graph()
    assert "pingthings.timeseries.stream" in graph["pingthings.timeseries.client"]
    assert "pingthings.timeseries.client" not in graph["pingthings.timeseries.stream"]
    assert "pingthings.timeseries.client" not in graph["pingthings.timeseries.streamset"]
