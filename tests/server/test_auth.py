"""API-key authentication: every RPC refused without a valid key; admin keys see hidden streams."""

from __future__ import annotations

import grpc
import pytest

from pingthings._proto import v5api
from pingthings.server.auth import KeyRing, bearer_token
from tests.conftest import AuthServer
from tests.server.helpers import create
from tests.server.rawclient import PREFIX, RawClient

# Every path of the v5 service and its cardinality, from the generated service description.
METHODS = {path: h.cardinality for path, h in v5api.BTrDbBase().__mapping__().items()}


def call_any(channel: grpc.Channel, path: str, metadata: list[tuple[str, str]] | None) -> None:
    cardinality = METHODS[path]
    if cardinality.client_streaming:
        list(channel.stream_stream(path)(iter([b""]), metadata=metadata, timeout=10))
    elif cardinality.server_streaming:
        list(channel.unary_stream(path)(b"", metadata=metadata, timeout=10))
    else:
        channel.unary_unary(path)(b"", metadata=metadata, timeout=10)


@pytest.mark.parametrize("header", [None, "Bearer wrong-key", "Basic abc", "Bearer"])
def test_every_rpc_refused_without_a_valid_key(auth_server: AuthServer, header: str | None) -> None:
    metadata = None if header is None else [("authorization", header)]
    with grpc.insecure_channel(auth_server.endpoint) as channel:
        for path in METHODS:
            with pytest.raises(grpc.RpcError) as info:
                call_any(channel, path, metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, path
            assert info.value.details() == "invalid api key"


def test_platform_service_is_guarded_too(auth_server: AuthServer) -> None:
    from pingthings._proto.pingthings.platform.v1 import PlatformBase

    paths = list(PlatformBase().__mapping__())
    assert paths
    with grpc.insecure_channel(auth_server.endpoint) as channel:
        for path in paths:
            with pytest.raises(grpc.RpcError) as info:
                call_any_platform(channel, path, PlatformBase().__mapping__()[path].cardinality)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, path


def call_any_platform(channel: grpc.Channel, path: str, cardinality) -> None:  # type: ignore[no-untyped-def]
    if cardinality.client_streaming:
        list(channel.stream_stream(path)(iter([b""]), timeout=10))
    elif cardinality.server_streaming:
        list(channel.unary_stream(path)(b"", timeout=10))
    else:
        channel.unary_unary(path)(b"", timeout=10)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_valid_key_any_scheme_case(auth_server: AuthServer, scheme: str) -> None:
    with grpc.insecure_channel(auth_server.endpoint) as channel:
        reply = channel.unary_unary(PREFIX + "Info")(
            b"", metadata=[("authorization", f"{scheme} {auth_server.api_key}")]
        )
    assert v5api.InfoResponse.parse(reply).major_version == 5


def test_admin_key_sees_hidden_streams(auth_server: AuthServer, unique_collection: str) -> None:
    with (
        RawClient(auth_server.endpoint, auth_server.api_key) as user,
        RawClient(auth_server.endpoint, auth_server.admin_key) as admin,
    ):
        visible = create(user, unique_collection + "/open", {"name": "v"})
        hidden = create(user, unique_collection + "/secret", {"name": "h", "hidden": "true"})

        def lookup(client: RawClient) -> set[bytes]:
            replies = client.stream(
                "LookupStreams",
                v5api.LookupStreamsParams(collection=unique_collection, is_collection_prefix=True),
            )
            return {d.uuid for p in replies for d in v5api.LookupStreamsResponse.parse(p).results}

        def collections(client: RawClient) -> set[str]:
            replies = client.stream("ListCollections", v5api.ListCollectionsParams(prefix=unique_collection))
            return {c for p in replies for c in v5api.ListCollectionsResponse.parse(p).collections}

        assert lookup(user) == {visible}
        assert lookup(admin) == {visible, hidden}
        assert collections(user) == {unique_collection + "/open"}
        assert collections(admin) == {unique_collection + "/open", unique_collection + "/secret"}


def test_bearer_parsing_and_keyring() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc ") == "abc"
    assert bearer_token("Token abc") is None
    assert bearer_token(None) is None
    ring = KeyRing({"k1": False, "k2": True})
    assert ring.admin_flag("k1") is False and ring.admin_flag("k2") is True and ring.admin_flag("k3") is None
    assert not KeyRing({}).enabled
