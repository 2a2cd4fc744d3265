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
