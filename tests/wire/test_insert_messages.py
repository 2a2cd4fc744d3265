"""ArrowInsertParams and InsertResponse by hand (wire/insert_messages.py) against the message classes."""

from __future__ import annotations

import uuid

import pytest

from pingthings._proto.v5api import ArrowInsertParams, InsertResponse, MergePolicy, RoundSpec, Status
from pingthings.wire.insert_messages import (
    ArrowInsertRequest,
    encode_insert_response,
    read_arrow_insert,
    read_insert_response,
)

UUID = uuid.UUID(int=0x1234_5678_9ABC).bytes
IPC = bytes(range(256)) * 9


@pytest.mark.parametrize("policy", list(MergePolicy))
@pytest.mark.parametrize("sync", [False, True])
@pytest.mark.parametrize("payload", [b"", b"x", IPC])
def test_plain_requests_read_as_the_message_class_reads_them(
    policy: MergePolicy, sync: bool, payload: bytes
) -> None:
    data = bytes(ArrowInsertParams(uuid=UUID, sync=sync, merge_policy=policy, arrow_bytes=payload))
    parsed = ArrowInsertParams.parse(data)
    assert read_arrow_insert(data) == ArrowInsertRequest(
        parsed.uuid, parsed.sync, int(parsed.merge_policy), None, parsed.arrow_bytes
    )


def test_fields_in_any_order() -> None:
    data = b"\x2a\x02ab" + b"\x18\x02" + b"\x0a\x10" + UUID + b"\x10\x01"
    assert read_arrow_insert(data) == ArrowInsertRequest(UUID, True, 2, None, b"ab")


@pytest.mark.parametrize(
    "data",
    [
        bytes(ArrowInsertParams(uuid=UUID, rounding=RoundSpec(bits=3), arrow_bytes=b"ab")),  # rounding
        b"\x0a\x10" + UUID + b"\x30\x01",  # an unknown field 6
        b"\x0a\x10" + UUID + b"\x0a\x10" + UUID,  # uuid twice
        b"\x18\x07",  # no such merge policy
        b"\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # a negative merge policy
        b"\x0a\x10" + UUID[:4],  # the uuid runs past the end
        b"\x10\x80",  # a truncated varint
        b"\x11" + bytes(8),  # sync with the wire type of a double
    ],
)
def test_anything_else_is_left_to_the_strict_decoder(data: bytes) -> None:
    assert read_arrow_insert(data) is None


@pytest.mark.parametrize("version", [0, 1, 127, 128, 1 << 40, (1 << 64) - 1])
def test_insert_response_written_and_read_as_protobuf_does(version: int) -> None:
    encoded = encode_insert_response(version)
    assert encoded == bytes(InsertResponse(version_major=version))
    assert read_insert_response(encoded) == version
    assert read_insert_response(memoryview(encoded)) == version


@pytest.mark.parametrize(
    "reply",
    [
        bytes(InsertResponse(stat=Status(code=404, msg="no such stream"))),
        bytes(InsertResponse(version_major=5, version_minor=1)),
        b"\x10\x80",  # truncated
    ],
)
def test_other_insert_responses_are_left_to_the_message_class(reply: bytes) -> None:
    assert read_insert_response(reply) is None
