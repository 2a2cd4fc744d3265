"""Point widths and schemas of ``pingthings.timeseries.constants``."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pingthings.timeseries import constants as c


def test_point_widths_are_ints_with_their_window_length() -> None:
    assert len(c.PW) == 61
    for i, pw in enumerate(c.PW):
        assert pw == i and isinstance(pw, int)
        assert pw.nanoseconds == 2**i
        assert pw.seconds == pytest.approx(2**i / 1e9)


@pytest.mark.parametrize("bad", [-1, 64, 100])
def test_point_width_out_of_range_is_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="between 0 and 63"):
        c._PW(bad)


def test_point_width_is_not_a_float() -> None:
    with pytest.raises(TypeError):
        c._PW(3.0)  # type: ignore[arg-type]


def test_time_limits_match_the_v5_axis() -> None:
    assert c.MINIMUM_TIME == -(16 << 56)
    assert c.MAXIMUM_TIME == (48 << 56) - 1


def test_stat_schemas_differ_only_in_float_width() -> None:
    names = ["time", "min", "mean", "max", "count", "stddev"]
    assert c.STAT_F64_SCHEMA.names == c.STAT_F32_SCHEMA.names == names
    assert c.STAT_F32_SCHEMA.field("mean").type == pa.float32()
    assert c.STAT_F64_SCHEMA.field("mean").type == pa.float64()
    assert c.RAW_VALUES_SCHEMA.field("time").type == pa.timestamp("ns", tz="UTC")


def test_point_width_units_agree_with_timedelta64() -> None:
    import numpy as np

    for pw in c.PW:
        span = np.timedelta64(pw.nanoseconds, "ns")
        assert pw.microseconds == pytest.approx(span / np.timedelta64(1, "us"))
        assert pw.milliseconds == pytest.approx(span / np.timedelta64(1, "ms"))
        assert pw.minutes == pytest.approx(span / np.timedelta64(1, "m"))
        assert pw.hours == pytest.approx(span / np.timedelta64(1, "h"))
        assert pw.days == pytest.approx(span / np.timedelta64(1, "D"))


@pytest.mark.parametrize(
    ("pw", "text"),
    [
        (0, "PW[0] = 1 nanosecond"),
        (9, "PW[9] = 512 nanoseconds"),
        (10, "PW[10] ≈ 1.02 microseconds"),
        (30, "PW[30] ≈ 1.07 seconds"),
        (42, "PW[42] ≈ 1.22 hours"),
        (63, "PW[63] ≈ 292 years"),
    ],
)
def test_point_width_str_is_human_readable(pw: int, text: str) -> None:
    assert str(c._PW(pw)) == text
    assert repr(c._PW(pw)) == f"PW[{pw}]"


def test_point_width_keeps_int_behaviour() -> None:
    assert c.PW[3] + 1 == 4 and c.PW[30] == 30 and hash(c.PW[5]) == hash(5)
    assert all(isinstance(pw, c._PW) for pw in c.PW)
    assert c._PW(c.MAX_POINT_WIDTH).nanoseconds == 2**63
    with pytest.raises(TypeError):
        c._PW(True)  # type: ignore[arg-type]


def test_insert_batch_size_and_max_point_width() -> None:
    from pingthings.wire import limits

    assert c.INSERT_BATCH_SIZE == limits.INSERT_BATCH_SIZE == 50_000
    assert c.MAX_POINT_WIDTH == 63
