"""The InfoResponse reader against google protobuf (built from our own .proto at test time)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pingthings.wire.info_reply import InfoReply, decode_info
from pingthings.wire.protowire import WireFormatError

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

u32 = st.integers(min_value=0, max_value=2**32 - 1)
text = st.text(max_size=12)


def _theirs(m: Any) -> InfoReply:
    code, msg = (m.stat.code, m.stat.msg) if m.HasField("stat") else (0, "")
    endpoints = list(m.proxy.proxyEndpoints) if m.HasField("proxy") else []
    return InfoReply(code, msg, m.majorVersion, m.minorVersion, m.build, endpoints)


@st.composite
def info_messages(draw: st.DrawFn, pb: ModuleType) -> Any:
    m = pb.InfoResponse()
    if draw(st.booleans()):
        m.stat.code = draw(u32)
        m.stat.msg = draw(text)
    if draw(st.booleans()):
        m.mash.revision = draw(st.integers(min_value=0, max_value=2**63 - 1))
        m.mash.leader = draw(text)
    m.majorVersion = draw(u32)
    m.minorVersion = draw(u32)
    m.build = draw(text)
    if draw(st.booleans()):
        m.proxy.proxyEndpoints.extend(draw(st.lists(text, max_size=4)))
    return m


@SETTINGS
@given(data=st.data())
def test_decodes_like_protobuf_including_merged_pieces(pb: ModuleType, data: st.DataObject) -> None:
    """One message, or several concatenated (protobuf merges them: last scalar wins, lists append)."""
    messages = data.draw(st.lists(info_messages(pb), min_size=1, max_size=3))
    wire = b"".join(m.SerializeToString() for m in messages)
    merged = pb.InfoResponse()
    merged.ParseFromString(wire)
    assert decode_info(wire) == _theirs(merged)
    assert decode_info(memoryview(wire)) == _theirs(merged)


def test_empty_message_is_all_defaults() -> None:
    assert decode_info(b"") == InfoReply(0, "", 0, 0, "", [])


@pytest.mark.parametrize(
    ("wire", "problem"),
    [
        (b"\x18", "truncated varint"),
        (b"\x2a\x05ab", "runs past the end"),
        (b"\x1a\x01x", "field 3 has wire type 2"),
        (b"\x2a\x02\xff\xfe", "build is not valid UTF-8"),
        (b"\x32\x03\x0a\x01\xff", "proxy endpoint is not valid UTF-8"),
        (b"\x0a\x01\x08", "truncated varint"),
        (b"\x00", "invalid field number 0"),
    ],
)
def test_malformed_replies_name_the_problem(wire: bytes, problem: str) -> None:
    with pytest.raises(WireFormatError, match=problem):
        decode_info(wire)
