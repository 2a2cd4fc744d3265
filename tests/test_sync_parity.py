"""The synchronous faces match the async classes they drive, and use only their public API.

For each pair (Client/AsyncClient, Stream/AsyncStream, StreamSet/AsyncStreamSet) every public member
must exist on both sides with the same kind (method or property), the same parameters (names, kinds,
defaults) and the same docstring summary, where async class names read as their sync counterparts.
Differences are allowed only when listed below with the reason. A method added to one face only, a
default changed on one side, or a summary edited on one side fails here.

To extend: add the new member to both faces, or add an entry to the matching table with its reason.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from pingthings.timeseries.async_client import AsyncClient
from pingthings.timeseries.async_stream import AsyncStream
from pingthings.timeseries.async_streamset import AsyncStreamSet
from pingthings.timeseries.client import Client
from pingthings.timeseries.stream import Stream
from pingthings.timeseries.streamset import StreamSet

PAIRS: list[tuple[type, type]] = [(Client, AsyncClient), (Stream, AsyncStream), (StreamSet, AsyncStreamSet)]

#: Public members of a sync class that its async class does not have, and why.
ONLY_SYNC: dict[str, str] = {
    "Client.get_async_client": "the sync face's way to the async client it drives",
    "Client.get_event_loop": "the event loop thread that only the sync face has",
    "Stream.async_stream": "the sync face's way to the async stream it wraps",
    "Stream.conn": "the sync client (the async stream's counterpart is `client`)",
    "StreamSet.async_streamset": "the sync face's way to the async set it wraps",
}

#: Public members of an async class that its sync class does not have, and why.
ONLY_ASYNC: dict[str, str] = {
    "AsyncClient.aclose": "the async close; the sync face has close()",
    "AsyncClient.connect_with": "connecting from resolved settings, used by async integrations",
    "AsyncClient.stream_handle": "the plain-function form of stream_from_uuid used inside the async face",
    "AsyncClient.channel": "the call target the data calls use (part of the async plumbing)",
    "AsyncClient.limiter": "the call target the data calls use (part of the async plumbing)",
    "AsyncClient.arrow_enabled": "the call target the data calls use (part of the async plumbing)",
    "AsyncClient.endpoint": "the call target the data calls use; the sync repr shows it",
    "AsyncClient.closed": "the call target the data calls use; a closed sync client raises ClientClosedError",
    "AsyncClient.proxy_channel": "the channel a data call retries through after a 405 (async plumbing)",
    "AsyncStream.client": "the async client (the sync stream's counterpart is `conn`)",
    "AsyncStream.from_descriptor": "building a stream from a server reply, inside the async face",
    "AsyncStream.ensure_metadata": "lazy metadata loading, which the sync properties do themselves",
    "AsyncStream.has_metadata": "lazy metadata loading, which the sync properties do themselves",
    "AsyncStream.known_to_exist": "lazy metadata loading, which the sync properties do themselves",
}

#: Members whose parameters differ on purpose, and why.
SIGNATURE_DIFFERS: dict[str, str] = {}

#: Members whose docstring summaries differ on purpose, and why.
SUMMARY_DIFFERS: dict[str, str] = {
    "Client.close": "the sync close also stops the event loop thread",
}

#: Files of the sync faces, which may use only the async classes' public API.
SYNC_SOURCES = ["client.py", "stream.py", "streamset.py"]

_ASYNC_NAME = re.compile(r"\bAsync(Client|StreamSet|Stream)\b")


def _public(cls: type) -> dict[str, Any]:
    return {name: inspect.getattr_static(cls, name) for name in dir(cls) if not name.startswith("_")}


def _is_property(member: Any) -> bool:
    return isinstance(member, property)


def _summary(member: Any) -> str:
    target = member.fget if isinstance(member, property) else member
    if isinstance(target, staticmethod | classmethod):
        target = target.__func__
    doc = inspect.getdoc(target) or ""
    text = " ".join(doc.split("\n\n", 1)[0].split())
    text = _ASYNC_NAME.sub(r"\1", text)
    return re.sub(r"\bAn (:class:`(Client|Stream|StreamSet)`)", r"A \1", text)


def _parameters(member: Any) -> list[tuple[str, Any, Any]]:
    target = member.__func__ if isinstance(member, staticmethod | classmethod) else member
    return [(p.name, p.kind, p.default) for p in inspect.signature(target).parameters.values()]


@pytest.mark.parametrize(("sync_cls", "async_cls"), PAIRS, ids=lambda c: c.__name__)
def test_both_faces_have_the_same_public_members(sync_cls: type, async_cls: type) -> None:
    sync_names, async_names = set(_public(sync_cls)), set(_public(async_cls))
    only_sync = {f"{sync_cls.__name__}.{n}" for n in sync_names - async_names}
    only_async = {f"{async_cls.__name__}.{n}" for n in async_names - sync_names}
    assert only_sync == {k for k in ONLY_SYNC if k.startswith(f"{sync_cls.__name__}.")}
    assert only_async == {k for k in ONLY_ASYNC if k.startswith(f"{async_cls.__name__}.")}


@pytest.mark.parametrize(("sync_cls", "async_cls"), PAIRS, ids=lambda c: c.__name__)
def test_shared_members_match_in_kind_parameters_and_summary(sync_cls: type, async_cls: type) -> None:
    sync_members, async_members = _public(sync_cls), _public(async_cls)
    problems = []
    for name in sorted(set(sync_members) & set(async_members)):
        key = f"{sync_cls.__name__}.{name}"
        ours, theirs = sync_members[name], async_members[name]
        if _is_property(ours) != _is_property(theirs):
            problems.append(f"{key}: a property on one face only")
            continue
        checked = not _is_property(ours) and key not in SIGNATURE_DIFFERS
        if checked and _parameters(ours) != _parameters(theirs):
            problems.append(f"{key}: parameters {_parameters(ours)} != {_parameters(theirs)}")
        if key not in SUMMARY_DIFFERS and _summary(ours) != _summary(theirs):
            problems.append(f"{key}: summary {_summary(ours)!r} != {_summary(theirs)!r}")
    assert not problems, "\n".join(problems)


def test_the_exception_tables_name_only_real_differences() -> None:
    # An entry whose difference was removed must go, so the tables stay a true list.
    for table in (SIGNATURE_DIFFERS, SUMMARY_DIFFERS):
        for key in table:
            cls_name, _, name = key.partition(".")
            sync_cls, async_cls = next(pair for pair in PAIRS if pair[0].__name__ == cls_name)
            ours, theirs = _public(sync_cls)[name], _public(async_cls)[name]
            if table is SUMMARY_DIFFERS:
                assert _summary(ours) != _summary(theirs), f"{key} no longer differs"
            else:
                assert _parameters(ours) != _parameters(theirs), f"{key} no longer differs"


def _private_uses(path: Path) -> list[str]:
    """``obj._name`` accesses in ``path`` on anything but ``self``, ``cls`` or the file's own classes."""
    tree = ast.parse(path.read_text(), str(path))
    own = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    own |= {"self", "cls", "out"}  # out: the new set StreamSet._wrap builds
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in own)
        ):
            found.append(f"{path.name}:{node.lineno}: .{node.attr}")
    return found


def test_the_sync_faces_use_only_the_async_public_api() -> None:
    folder = Path(inspect.getfile(Client)).parent
    found = [use for name in SYNC_SOURCES for use in _private_uses(folder / name)]
    assert not found, "private members used by the sync faces:\n" + "\n".join(found)
