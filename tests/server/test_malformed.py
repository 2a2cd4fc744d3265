"""Malformed requests to every RPC: each gets status 421 in band and the server keeps serving.

Raw bytes travel over a grpclib channel with the pass-through codec, so nothing on the client
side validates or re-encodes them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from grpclib.client import Channel
from grpclib.const import Cardinality
from grpclib.encoding.base import CodecBase

from pingthings._proto import v5api
from pingthings.server import Server
from pingthings.server.config import parse_listen
from pingthings.wire.status import StatusCode
from tests.server.rawclient import stat_of

MALFORMED = {
    "truncated varint": b"\x08\xff\xff",
    "length past end": b"\x0a\xff\x01abc",
    "invalid wire type": b"\x0f\x00",
    "group wire type": b"\x0b\x0c",
    "field number zero": b"\x00\x01",
}

METHODS = {path: handler.cardinality for path, handler in v5api.BTrDbBase().__mapping__().items()}


class PassThroughCodec(CodecBase):
    """grpclib codec that sends and returns payloads as bytes, untouched."""

    __content_subtype__ = "proto"

    def encode(self, message: Any, message_type: Any) -> bytes:
        return bytes(message)

    def decode(self, data: bytes, message_type: Any) -> bytes:
        return data


async def call(channel: Channel, path: str, cardinality: Cardinality, payload: bytes) -> list[bytes]:
    async with channel.request(path, cardinality, bytes, bytes, timeout=30) as stream:
        await stream.send_message(payload, end=True)
        return [message async for message in stream]


async def exercise(endpoint: str) -> dict[tuple[str, str], list[bytes]]:
    host, port = parse_listen(endpoint)
    channel = Channel(host, port, codec=PassThroughCodec())
    try:
        results = {}
        for path, cardinality in METHODS.items():
            for name, payload in MALFORMED.items():
                results[path, name] = await call(channel, path, cardinality, payload)
                info = await call(channel, "/v5api.BTrDB/Info", Cardinality.UNARY_UNARY, b"")
                assert v5api.InfoResponse.parse(info[0]).major_version == 5
        return results
    finally:
        channel.close()


def test_every_rpc_answers_malformed_input_with_421(server: Server) -> None:
    assert set(METHODS) == set(v5api.BTrDbBase().__mapping__())  # every RPC of v5api.BTrDB
    results = asyncio.run(exercise(server.endpoint))
    for (path, name), replies in results.items():
        assert len(replies) == 1, (path, name, replies)
        stat = stat_of(replies[0])
        assert stat is not None and stat.code == StatusCode.WRONG_ARGS, (path, name, stat)
        assert "malformed" in stat.msg


@pytest.mark.parametrize("method", ["StreamInfo", "Obliterate", "Flush", "Delete", "Nearest"])
def test_uuid_of_wrong_length_is_421(server: Server, method: str) -> None:
    from tests.server.rawclient import RawClient, stat_code

    params = {
        "StreamInfo": v5api.StreamInfoParams,
        "Obliterate": v5api.ObliterateParams,
        "Flush": v5api.FlushParams,
        "Delete": v5api.DeleteParams,
        "Nearest": v5api.NearestParams,
    }[method]
    with RawClient(server.endpoint) as client:
        for length in (0, 15, 17):
            assert stat_code(client.unary(method, params(uuid=b"u" * length))) == StatusCode.WRONG_ARGS
        assert client.info().major_version == 5
