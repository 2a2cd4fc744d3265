"""Request headers, grpc-timeout encoding, metadata validation and status parsing."""

from __future__ import annotations

import base64

import pytest

from pingthings.timeseries.transport.metadata import (
    USER_AGENT,
    check_response_headers,
    encode_metadata,
    encode_timeout,
    request_headers,
    response_status,
    validate_method,
)

_UNIT_SECONDS = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "S": 1.0, "M": 60.0, "H": 3600.0}


@pytest.mark.parametrize("seconds", [1e-9, 0.0005, 0.25, 1.0, 12.5, 99_999.0, 3e6, 1e9])
def test_timeout_encoding_rounds_up_and_fits_eight_digits(seconds: float) -> None:
    text = encode_timeout(seconds)
    digits, unit = text[:-1], text[-1]
    assert digits.isdigit() and len(digits) <= 8
    decoded = int(digits) * _UNIT_SECONDS[unit]
    assert decoded >= seconds * (1 - 1e-12)
    assert decoded <= seconds * 1.01 + 1e-9


def test_request_headers_carry_grpc_essentials() -> None:
    headers = dict(
        request_headers(
            method="/a.B/C", authority="h:1", scheme="https", timeout=2.0, metadata=[(b"x-k", b"v")]
        )
    )
    assert headers[b":method"] == b"POST"
    assert headers[b":path"] == b"/a.B/C"
    assert headers[b":scheme"] == b"https"
    assert headers[b"content-type"] == b"application/grpc"
    assert headers[b"te"] == b"trailers"
    assert headers[b"user-agent"] == USER_AGENT.encode()
    assert USER_AGENT.startswith("pingthings/")
    assert headers[b"grpc-timeout"] == encode_timeout(2.0).encode()
    assert headers[b"x-k"] == b"v"


def test_binary_metadata_is_base64() -> None:
    [(key, value)] = encode_metadata([("trace-bin", b"\x00\xff\x10")])
    assert key == b"trace-bin"
    assert base64.b64decode(value + b"=" * (-len(value) % 4)) == b"\x00\xff\x10"


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        (("Authorization", "x"), "invalid metadata key"),
        (("grpc-status", "0"), "reserved"),
        (("te", "x"), "reserved"),
        (("k", b"bytes"), "must be str"),
        (("k", "é"), "printable ASCII"),
        (("k", "a\nb"), "printable ASCII"),
        (("k",), "pairs"),
    ],
)
def test_bad_metadata_is_refused_with_reason(item: tuple, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        encode_metadata([item])


@pytest.mark.parametrize("path", ["v5api.BTrDB/Info", "/Info", "/a/b/c", "", "/é.B/C"])
def test_bad_method_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="method path"):
        validate_method(path)


def test_status_and_percent_encoded_message() -> None:
    assert response_status({b"grpc-status": b"16", b"grpc-message": b"bad%20key%3A%20%C3%A9"}) == (
        16,
        "bad key: é",
    )
    assert response_status({b":status": b"200"}) is None
    assert response_status({b"grpc-status": b"x"})[0] == 2


@pytest.mark.parametrize(
    ("http", "grpc_code"), [(b"401", 16), (b"403", 7), (b"404", 12), (b"503", 14), (b"500", 2)]
)
def test_non_200_replies_map_to_grpc_status(http: bytes, grpc_code: int) -> None:
    problem = check_response_headers({b":status": http})
    assert problem is not None and problem[0] == grpc_code
    assert http.decode() in problem[1]


def test_non_grpc_content_type_is_flagged() -> None:
    problem = check_response_headers({b":status": b"200", b"content-type": b"text/html"})
    assert problem is not None and "text/html" in problem[1]
    assert check_response_headers({b":status": b"200", b"content-type": b"application/grpc+proto"}) is None
    # trailers-only replies are judged by their grpc-status, with or without content-type
    assert check_response_headers({b":status": b"200", b"grpc-status": b"12"}) is None
