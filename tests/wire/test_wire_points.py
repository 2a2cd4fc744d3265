"""The numpy point codecs against google protobuf (built from our own .proto at test time)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pingthings.wire import points
from pingthings.wire.points import WireFormatError

from .protobuild import Shape, bits_to_float, double_bits, int64s, message, u64s

SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

RESPONSE_HEADER = {1: "status", 2: "u64", 3: "u64"}
STRICTER_THAN_UPB = ("wire type", "invalid field number 0", "end-group")


def _bits(values: np.ndarray) -> list[int]:
    return np.ascontiguousarray(values, dtype=np.float64).view(np.uint64).tolist()


def _float_bits(values: list[float]) -> list[int]:
    return np.array(values, dtype=np.float64).view(np.uint64).tolist()


def _stat(msg: Any) -> tuple[int, str] | None:
    return (msg.stat.code, msg.stat.msg) if msg.HasField("stat") else None


def _ours_stat(stat: points.WireStatus | None) -> tuple[int, str] | None:
    return None if stat is None else (stat.code, stat.msg)


# --------------------------------------------------------------------------------------------
# One description per message kind: how to decode it both ways into comparable plain values.


@dataclass(frozen=True)
class Kind:
    name: str
    shape: Shape
    decode: Callable[[bytes], Any]
    ours: Callable[[Any], Any]  # our decoded result -> plain values
    theirs: Callable[[Any], Any]  # protobuf message -> the same plain values


def _raw_theirs(m: Any) -> Any:
    return (
        [p.time for p in m.values],
        _float_bits([p.value for p in m.values]),
        m.versionMajor,
        m.versionMinor,
        _stat(m),
    )


def _raw_ours(r: points.RawValuesResult) -> Any:
    return (r.times.tolist(), _bits(r.values), r.version_major, r.version_minor, _ours_stat(r.stat))


STAT_FLOATS = ("min", "mean", "max", "stddev")


def _windows_theirs(m: Any) -> Any:
    columns = [[p.time for p in m.values], [p.count for p in m.values]]
    columns += [_float_bits([getattr(p, f) for p in m.values]) for f in STAT_FLOATS]
    return (columns, m.versionMajor, m.versionMinor, _stat(m))


def _windows_ours(r: points.WindowsResult) -> Any:
    columns = [r.time.tolist(), r.count.tolist()] + [_bits(getattr(r, f)) for f in STAT_FLOATS]
    return (columns, r.version_major, r.version_minor, _ours_stat(r.stat))


def _changes_theirs(m: Any) -> Any:
    return ([r.start for r in m.ranges], [r.end for r in m.ranges], m.versionMajor, m.versionMinor, _stat(m))


def _changes_ours(r: points.ChangesResult) -> Any:
    return (r.starts.tolist(), r.ends.tolist(), r.version_major, r.version_minor, _ours_stat(r.stat))


def _insert_theirs(m: Any) -> Any:
    bits = m.rounding.bits if m.HasField("rounding") and m.rounding.WhichOneof("spec") == "bits" else None
    return (
        m.uuid,
        [p.time for p in m.values],
        _float_bits([p.value for p in m.values]),
        m.sync,
        m.merge_policy,
        bits,
    )


def _insert_ours(r: points.InsertRequest) -> Any:
    return (r.uuid, r.times.tolist(), _bits(r.values), r.sync, r.merge_policy, r.rounding_bits)


def _nearest_theirs(m: Any) -> Any:
    point = (m.value.time, _float_bits([m.value.value])[0]) if m.HasField("value") else None
    return (point, m.versionMajor, m.versionMinor, _stat(m))


def _nearest_ours(r: points.NearestResult) -> Any:
    point = None if r.time is None else (r.time, _float_bits([r.value])[0])
    return (point, r.version_major, r.version_minor, _ours_stat(r.stat))


KINDS = {
    "RawValuesResponse": Kind(
        "RawValuesResponse", Shape(RESPONSE_HEADER, 4, 2), points.decode_raw_values, _raw_ours, _raw_theirs
    ),
    "AlignedWindowsResponse": Kind(
        "AlignedWindowsResponse",
        Shape(RESPONSE_HEADER, 4, 6),
        points.decode_windows,
        _windows_ours,
        _windows_theirs,
    ),
    "WindowsResponse": Kind(
        "WindowsResponse", Shape(RESPONSE_HEADER, 4, 6), points.decode_windows, _windows_ours, _windows_theirs
    ),
    "ChangesResponse": Kind(
        "ChangesResponse", Shape(RESPONSE_HEADER, 4, 2), points.decode_changes, _changes_ours, _changes_theirs
    ),
    "InsertParams": Kind(
        "InsertParams",
        Shape({1: "bytes", 2: "bool", 4: "enum", 5: "round"}, 3, 2),
        points.decode_insert,
        _insert_ours,
        _insert_theirs,
    ),
    "NearestResponse": Kind(
        "NearestResponse",
        Shape(RESPONSE_HEADER, 4, 2, repeated=False),
        points.decode_nearest,
        _nearest_ours,
        _nearest_theirs,
    ),
}


def _parse_theirs(pb: ModuleType, kind: Kind, data: bytes) -> Any | None:
    try:
        return kind.theirs(getattr(pb, kind.name).FromString(data))
    except DecodeError:
        return None


def _parse_ours(kind: Kind, data: bytes) -> Any | None:
    try:
        return kind.ours(kind.decode(data))
    except WireFormatError:
        return None


# --------------------------------------------------------------------------------------------
# Decoding any valid encoding


@pytest.mark.parametrize("name", list(KINDS))
@SETTINGS
@given(data=st.data())
def test_decode_any_valid_encoding_like_protobuf(pb: ModuleType, name: str, data: st.DataObject) -> None:
    kind = KINDS[name]
    encoded = data.draw(message(kind.shape))
    expected = _parse_theirs(pb, kind, encoded)
    assume(expected is not None)  # e.g. a status message that is not valid UTF-8
    assert kind.ours(kind.decode(encoded)) == expected
    assert kind.ours(kind.decode(memoryview(bytearray(encoded)))) == expected


@pytest.mark.parametrize("name", list(KINDS))
@SETTINGS
@given(data=st.data())
def test_truncated_or_corrupted_input_raises_wire_format_error(
    pb: ModuleType, name: str, data: st.DataObject
) -> None:
    kind = KINDS[name]
    encoded = bytearray(data.draw(message(kind.shape)))
    assume(len(encoded) > 0)
    if data.draw(st.booleans()):
        del encoded[data.draw(st.integers(0, len(encoded) - 1)) :]
    else:
        encoded[data.draw(st.integers(0, len(encoded) - 1))] = data.draw(st.integers(0, 255))
    expected = _parse_theirs(pb, kind, bytes(encoded))
    try:
        ours = kind.ours(kind.decode(bytes(encoded)))
    except WireFormatError as exc:
        # Where upb is lenient we are strict: a known field with the wrong wire type (upb keeps it
        # as an unknown field), a key with field number 0 or a stray end-group inside groups.
        assert expected is None or any(words in str(exc) for words in STRICTER_THAN_UPB), str(exc)
    else:
        assert ours == expected


def test_malformed_examples_name_the_problem() -> None:
    cases = {
        b"\x22": "truncated varint",
        b"\x22\x14" + bytes(18): "runs past the end",
        b"\x10\xff\xff": "truncated varint",
        b"\x10" + b"\xff" * 10 + b"\x01": "longer than 10 bytes",
        b"\x0f": "invalid wire type",
        b"\x00": "invalid field number",
        b"\x21" + bytes(8): "wire type",  # versionMinor... field 4 as fixed64
        b"\x22\x09\x0a" + bytes(8): "wire type",  # record field 1 as LEN
        b"\x22\x05\x09\x00\x00\x00\x00": "truncated",
        b"\x0a\x02\x12\x05": "runs past the end",
        b"\x2b\x08\x01\x34": "does not match",
    }
    for data, words in cases.items():
        with pytest.raises(WireFormatError, match=words):
            points.decode_raw_values(data)


def test_wire_format_error_is_a_value_error() -> None:
    assert issubclass(WireFormatError, ValueError)


def test_huge_unknown_length_does_not_allocate() -> None:
    with pytest.raises(WireFormatError, match="runs past the end"):
        points.decode_insert(b"\x72\xff\xff\xff\xff\x0f")


# --------------------------------------------------------------------------------------------
# Encoding: byte-identical to protobuf whenever protobuf would write every point field


points_lists = st.lists(st.tuples(int64s, double_bits), max_size=40)
statuses = st.one_of(st.none(), st.tuples(st.integers(0, (1 << 32) - 1), st.text(max_size=10)))


def _set_stat(msg: Any, stat: tuple[int, str] | None) -> None:
    if stat is not None:
        msg.stat.SetInParent()
        msg.stat.code, msg.stat.msg = stat


def _check_encoding(pb_msg: Any, ours: bytes, all_fields_nonzero: bool) -> None:
    if all_fields_nonzero:
        assert ours == pb_msg.SerializeToString(deterministic=True)
    else:  # protobuf would omit zero fields; ours writes them, which parses to the same message
        assert type(pb_msg).FromString(ours) == pb_msg
        assert _bits_equal(type(pb_msg).FromString(ours), pb_msg)


def _bits_equal(a: Any, b: Any) -> bool:
    # message equality treats NaN != NaN and 0.0 == -0.0; compare the bytes of a canonical encoding
    return a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)


@SETTINGS
@given(pts=points_lists, major=u64s, minor=u64s, stat=statuses)
def test_encode_raw_values(
    pb: ModuleType, pts: list[tuple[int, int]], major: int, minor: int, stat: tuple[int, str] | None
) -> None:
    times = np.array([t for t, _ in pts], dtype=np.int64)
    values = np.array([b for _, b in pts], dtype=np.uint64).view(np.float64)
    msg = pb.RawValuesResponse(versionMajor=major, versionMinor=minor)
    _set_stat(msg, stat)
    for t, b in pts:
        msg.values.add(time=t, value=bits_to_float(b))
    ours = points.encode_raw_values(times, values, major, minor, stat)
    _check_encoding(msg, ours, all(t and b for t, b in pts))
    decoded = points.decode_raw_values(ours)
    assert decoded.times.tolist() == times.tolist()
    assert _bits(decoded.values) == _bits(values)
    assert (decoded.version_major, decoded.version_minor, _ours_stat(decoded.stat)) == (major, minor, stat)


@dataclass
class Windows:
    time: np.ndarray
    min: np.ndarray
    mean: np.ndarray
    max: np.ndarray
    count: np.ndarray
    stddev: np.ndarray


@SETTINGS
@given(
    rows=st.lists(st.tuples(int64s, double_bits, double_bits, double_bits, u64s, double_bits), max_size=30),
    major=u64s,
    stat=statuses,
)
def test_encode_windows(
    pb: ModuleType, rows: list[tuple[int, ...]], major: int, stat: tuple[int, str] | None
) -> None:
    def floats(i: int) -> np.ndarray:
        return np.array([r[i] for r in rows], dtype=np.uint64).view(np.float64)

    windows = Windows(
        np.array([r[0] for r in rows], dtype=np.int64),
        floats(1),
        floats(2),
        floats(3),
        np.array([r[4] for r in rows], dtype=np.uint64),
        floats(5),
    )
    msg = pb.AlignedWindowsResponse(versionMajor=major)
    _set_stat(msg, stat)
    for t, mn, me, mx, c, sd in rows:
        msg.values.add(
            time=t,
            min=bits_to_float(mn),
            mean=bits_to_float(me),
            max=bits_to_float(mx),
            count=c,
            stddev=bits_to_float(sd),
        )
    ours = points.encode_windows(windows, major, 0, stat)
    _check_encoding(msg, ours, all(all(r) for r in rows))
    decoded = points.decode_windows(ours)
    for name in ("time", "count"):
        assert getattr(decoded, name).tolist() == getattr(windows, name).tolist()
    for name in STAT_FLOATS:
        assert _bits(getattr(decoded, name)) == _bits(getattr(windows, name))
    assert decoded.count.dtype == np.uint64 and decoded.time.dtype == np.int64


@SETTINGS
@given(ranges=st.lists(st.tuples(int64s, int64s), max_size=30), minor=u64s, stat=statuses)
def test_encode_changes(
    pb: ModuleType, ranges: list[tuple[int, int]], minor: int, stat: tuple[int, str] | None
) -> None:
    msg = pb.ChangesResponse(versionMinor=minor)
    _set_stat(msg, stat)
    for s, e in ranges:
        msg.ranges.add(start=s, end=e)
    ours = points.encode_changes([s for s, _ in ranges], [e for _, e in ranges], 0, minor, stat)
    _check_encoding(msg, ours, all(s and e for s, e in ranges))
    decoded = points.decode_changes(ours)
    assert list(zip(decoded.starts.tolist(), decoded.ends.tolist(), strict=True)) == ranges


@SETTINGS
@given(point=st.one_of(st.none(), st.tuples(int64s, double_bits)), major=u64s, stat=statuses)
def test_encode_nearest(
    pb: ModuleType, point: tuple[int, int] | None, major: int, stat: tuple[int, str] | None
) -> None:
    msg = pb.NearestResponse(versionMajor=major)
    _set_stat(msg, stat)
    if point is None:
        ours = points.encode_nearest(None, None, major, 0, stat)
    else:
        msg.value.time, msg.value.value = point[0], bits_to_float(point[1])
        ours = points.encode_nearest(point[0], bits_to_float(point[1]), major, 0, stat)
    _check_encoding(msg, ours, point is None or all(point))
    decoded = points.decode_nearest(ours)
    assert _nearest_ours(decoded) == _nearest_theirs(msg)


@SETTINGS
@given(
    uuid=st.binary(max_size=17),
    pts=points_lists,
    sync=st.booleans(),
    merge=st.integers(-(1 << 31), (1 << 31) - 1),
    bits=st.one_of(st.none(), st.integers(-(1 << 31), (1 << 31) - 1)),
)
def test_encode_insert(
    pb: ModuleType, uuid: bytes, pts: list[tuple[int, int]], sync: bool, merge: int, bits: int | None
) -> None:
    times = [t for t, _ in pts]
    values = np.array([b for _, b in pts], dtype=np.uint64).view(np.float64)
    msg = pb.InsertParams(uuid=uuid, sync=sync, merge_policy=merge)
    if bits is not None:
        msg.rounding.bits = bits
    for t, b in pts:
        msg.values.add(time=t, value=bits_to_float(b))
    ours = points.encode_insert(uuid, times, values, sync=sync, merge_policy=merge, rounding_bits=bits)
    _check_encoding(msg, ours, all(t and b for t, b in pts))
    assert _insert_ours(points.decode_insert(ours)) == _insert_theirs(msg)


def test_status_round_trip(pb: ModuleType) -> None:
    mash = pb.Mash(revision=7).SerializeToString()  # field 3, which we do not model: skipped
    status = pb.Status(code=404, msg="stream not found ✓").SerializeToString()
    assert points.decode_status(status + b"\x1a" + bytes([len(mash)]) + mash) == (404, "stream not found ✓")
    plain = pb.Status(code=404, msg="stream not found ✓").SerializeToString()
    assert points.encode_status(404, "stream not found ✓") == plain
    assert points.encode_status(0, "") == b"" == pb.Status().SerializeToString()


# --------------------------------------------------------------------------------------------
# Fast path, views, larger messages and input checks


def test_fast_path_returns_views_and_copy_detaches(pb: ModuleType) -> None:
    rng = np.random.default_rng(1)
    times = rng.integers(1, 1 << 62, 5000)
    values = rng.normal(60, 5, 5000)
    encoded = points.encode_raw_values(times, values, 3, 4)
    view = points.decode_raw_values(encoded)
    assert np.shares_memory(view.times, np.frombuffer(encoded, np.uint8))
    copied = points.decode_raw_values(bytearray(encoded), copy=True)
    assert not np.shares_memory(copied.times, np.frombuffer(encoded, np.uint8))
    for result in (view, copied):
        assert np.array_equal(result.times, times) and np.array_equal(result.values, values)


def test_large_message_with_zero_fields_and_trailing_status(pb: ModuleType) -> None:
    rng = np.random.default_rng(2)
    n = 20_000
    times = rng.integers(-(1 << 40), 1 << 40, n)
    values = rng.normal(0, 1, n)
    times[rng.random(n) < 0.1] = 0
    values[rng.random(n) < 0.3] = 0.0
    values[::997] = np.nan
    msg = pb.RawValuesResponse(versionMajor=9)
    msg.values.extend(pb.RawPoint(time=int(t), value=float(v)) for t, v in zip(times, values, strict=True))
    encoded = (
        msg.SerializeToString() + pb.RawValuesResponse(stat=pb.Status(code=5, msg="late")).SerializeToString()
    )
    decoded = points.decode_raw_values(encoded)
    assert np.array_equal(decoded.times, times)
    assert _bits(decoded.values) == _bits(values)
    assert decoded.stat == (5, "late") and decoded.version_major == 9


def test_adversarial_values_that_look_like_records(pb: ModuleType) -> None:
    # Payload bytes that spell record keys and plausible lengths must not confuse the record walk.
    lookalike = int.from_bytes(b"\x22\x00\x22\x09\x09\x22\x12\x09", "little")
    n = 3000
    times = np.full(n, lookalike, dtype=np.uint64).view(np.int64)
    values = np.full(n, lookalike, dtype=np.uint64).view(np.float64).copy()
    values[::3] = 0.0
    times[1::4] = 0
    msg = pb.RawValuesResponse()
    msg.values.extend(pb.RawPoint(time=int(t), value=float(v)) for t, v in zip(times, values, strict=True))
    decoded = points.decode_raw_values(msg.SerializeToString())
    assert np.array_equal(decoded.times, times)
    assert _bits(decoded.values) == _bits(values)


def test_empty_messages() -> None:
    empty = points.decode_raw_values(b"")
    assert empty.times.dtype == np.int64 and empty.values.dtype == np.float64 and empty.times.size == 0
    assert empty.stat is None and empty.version_major == 0
    assert points.encode_raw_values([], []) == b""
    assert points.decode_windows(b"").count.dtype == np.uint64
    assert points.decode_nearest(b"").time is None
    request = points.decode_insert(b"")
    assert request.uuid == b"" and request.rounding_bits is None and request.times.size == 0


def test_encoder_input_errors() -> None:
    with pytest.raises(ValueError, match="values must be one-dimensional with 2"):
        points.encode_raw_values([1, 2], [1.0])
    with pytest.raises(TypeError, match="integer nanoseconds"):
        points.encode_raw_values([1.5], [1.0])
    with pytest.raises(TypeError, match="numeric"):
        points.encode_raw_values([1], ["x"])
    with pytest.raises(ValueError, match="do not fit in int64"):
        points.encode_raw_values(np.array([1 << 63], dtype=np.uint64), [1.0])
    with pytest.raises(ValueError, match="uint64"):
        points.encode_raw_values([], [], version_major=-1)
    with pytest.raises(ValueError, match="uint32"):
        points.encode_raw_values([], [], stat=(1 << 32, "x"))
    with pytest.raises(ValueError, match="int32"):
        points.encode_insert(b"u", [], [], rounding_bits=1 << 31)
    with pytest.raises(ValueError, match="count must not be negative"):
        points.encode_windows(Windows(*([np.array([1])] * 4), np.array([-1]), np.array([1.0])))


def test_encoders_accept_datetime64_and_int32(pb: ModuleType) -> None:
    stamps = np.array(["2024-01-01T00:00:00.000000001", "1970-01-01T00:00:01"], dtype="datetime64[ns]")
    encoded = points.encode_raw_values(stamps, np.array([1, 2], dtype=np.int32))
    decoded = points.decode_raw_values(encoded)
    assert decoded.times.tolist() == stamps.view(np.int64).tolist()
    assert decoded.values.tolist() == [1.0, 2.0]


@pytest.mark.parametrize("full", [True, False])
def test_decode_from_a_slice_of_a_larger_buffer(pb: ModuleType, full: bool) -> None:
    rng = np.random.default_rng(4)
    times = rng.integers(1, 1 << 60, 300)
    values = rng.normal(size=300)
    if not full:
        values[::7] = 0.0
    msg = pb.RawValuesResponse(versionMajor=77)
    msg.values.extend(pb.RawPoint(time=int(t), value=float(v)) for t, v in zip(times, values, strict=True))
    framed = b"\x00\x00\x00\x01\x00" + msg.SerializeToString() + b"trailing"
    window = memoryview(framed)[5 : len(framed) - len(b"trailing")]
    decoded = points.decode_raw_values(window)
    assert np.array_equal(decoded.times, times) and _bits(decoded.values) == _bits(values)
    assert decoded.version_major == 77
