"""Time helpers agree with numpy's datetime64 arithmetic to the nanosecond."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pingthings.timeseries.utils import timez

NS_RANGE = st.integers(-(2**60), 3 * 2**60 - 1)
DATETIMES = st.datetimes(min_value=datetime(1934, 1, 1), max_value=datetime(2078, 12, 31))


@given(DATETIMES)
def test_naive_datetime_is_utc_and_exact(dt: datetime) -> None:
    oracle = int(np.datetime64(dt.isoformat(), "ns").astype(np.int64))
    assert timez.datetime_to_ns(dt) == oracle
    assert timez.datetime_to_ns(dt.replace(tzinfo=UTC)) == oracle


@given(DATETIMES, st.integers(-23 * 60, 23 * 60))
def test_aware_datetime_is_converted_to_utc(dt: datetime, offset_min: int) -> None:
    aware = dt.replace(tzinfo=timezone(timedelta(minutes=offset_min)))
    oracle = int(np.datetime64(dt.isoformat(), "ns").astype(np.int64)) - offset_min * 60 * 10**9
    assert timez.datetime_to_ns(aware) == oracle


@given(NS_RANGE)
def test_ns_to_datetime_truncates_to_microseconds(ns: int) -> None:
    back = timez.ns_to_datetime(ns)
    assert back.tzinfo is not None
    assert timez.datetime_to_ns(back) == ns - ns % 1000


@given(NS_RANGE, st.sampled_from(["ns", "us", "ms", "s"]))
def test_datetime64_of_any_unit(ns: int, unit: str) -> None:
    value = np.datetime64(ns, "ns").astype(f"datetime64[{unit}]")
    assert timez.to_nanoseconds(value) == int(value.astype("datetime64[ns]").astype(np.int64))


@given(st.integers(-(2**62), 2**62))
def test_strings_of_digits_and_ints_pass_through(ns: int) -> None:
    assert timez.to_nanoseconds(ns) == ns
    assert timez.to_nanoseconds(str(ns)) == ns
    assert timez.to_nanoseconds(np.int64(ns)) == ns


@given(DATETIMES, st.integers(0, 999_999_999), st.sampled_from(["Z", "+00:00", "+05:30", "-0800"]))
def test_rfc3339_strings_with_nanosecond_fractions(dt: datetime, frac: int, tz: str) -> None:
    text = dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}" + tz
    sign = -1 if tz.startswith("-") else 1
    digits = tz.lstrip("+-").replace(":", "") if tz != "Z" else "0000"
    offset_ns = sign * (int(digits[:2]) * 60 + int(digits[2:])) * 60 * 10**9
    whole = int(np.datetime64(dt.replace(microsecond=0).isoformat(), "ns").astype(np.int64))
    oracle = whole + frac - offset_ns
    assert timez.to_nanoseconds(text) == oracle


def test_pandas_timestamp_keeps_nanoseconds() -> None:
    ts = pd.Timestamp("2024-05-01 12:00:00.123456789")
    assert timez.to_nanoseconds(ts) == ts.value
    assert timez.to_nanoseconds(ts.tz_localize("US/Eastern")) == ts.tz_localize("US/Eastern").value


def test_dates_and_integral_floats() -> None:
    assert timez.to_nanoseconds(date(2020, 1, 2)) == timez.datetime_to_ns(datetime(2020, 1, 2))
    assert timez.to_nanoseconds(1.5e9) == 1_500_000_000


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (1.5, ValueError),
        ("yesterday", ValueError),
        (np.datetime64("NaT"), ValueError),
        (object(), TypeError),
        (True, TypeError),
        (float("nan"), ValueError),
    ],
)
def test_bad_times_get_clear_errors(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        timez.to_nanoseconds(value)


@given(
    st.integers(0, 1000),
    st.integers(0, 1000),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
)
def test_ns_delta_matches_timedelta64(days: int, hours: int, seconds: int, micros: int) -> None:
    oracle = (
        (
            np.timedelta64(days, "D")
            + np.timedelta64(hours, "h")
            + np.timedelta64(seconds, "s")
            + np.timedelta64(micros, "us")
        )
        .astype("timedelta64[ns]")
        .astype(np.int64)
    )
    assert timez.ns_delta(days=days, hours=hours, seconds=seconds, microseconds=micros) == int(oracle)


def test_ns_delta_reads_floats_as_decimals() -> None:
    assert timez.ns_delta(seconds=0.1) == 100_000_000
    assert timez.ns_delta(milliseconds=Decimal("1.5"), nanoseconds=7) == 1_500_007
    with pytest.raises(TypeError):
        timez.ns_delta(nanoseconds=1.5)  # type: ignore[arg-type]


@given(st.integers(1, 2**62))
def test_nearest_point_width_rounds_log2(ns: int) -> None:
    assert int(timez.nearest_point_width(nanoseconds=ns)) == min(round(math.log2(ns)), 63)


def test_nearest_point_width_from_hertz_and_errors() -> None:
    assert int(timez.nearest_point_width(hertz=120)) == round(math.log2(1e9 / 120))
    assert int(timez.nearest_point_width(hertz=1)) == 30
    with pytest.raises(ValueError, match="either"):
        timez.nearest_point_width(seconds=1, hertz=1)
    with pytest.raises(ValueError, match="positive"):
        timez.nearest_point_width()


def test_currently_as_ns_is_now() -> None:
    before = timez.datetime_to_ns(datetime.now(UTC))
    now = timez.currently_as_ns()
    after = timez.datetime_to_ns(datetime.now(UTC)) + 1000
    assert before <= now <= after


@given(
    st.integers(-(2**60) // 86_400_000_000_000, (3 * 2**60) // 86_400_000_000_000), st.sampled_from("YMWD")
)
def test_datetime64_coarse_units_match_numpy(days: int, unit: str) -> None:
    value = np.datetime64(days, "D").astype(f"datetime64[{unit}]")
    assert timez.to_nanoseconds(value) == int(value.astype("datetime64[ns]").astype(np.int64))


@given(st.integers(-(2**62), 2**62), st.sampled_from(["ps", "fs", "as"]))
def test_datetime64_finer_than_ns_floors_like_numpy(ticks: int, unit: str) -> None:
    value = np.datetime64(ticks, unit)
    assert timez.to_nanoseconds(value) == int(value.astype("datetime64[ns]").astype(np.int64))


def test_datetime64_outside_the_int64_ns_range_does_not_wrap() -> None:
    far = np.datetime64("3000-01-01", "D")
    assert timez.to_nanoseconds(far) == timez.datetime_to_ns(datetime(3000, 1, 1))
    assert timez.to_nanoseconds(np.datetime64(5, "10s")) == 50 * 10**9  # unit with a multiplier


def _log2_rounded_by_decimal(x: Decimal) -> int:
    """Independent oracle: log2 through 80-digit decimal logarithms."""
    from decimal import localcontext

    with localcontext() as ctx:
        ctx.prec = 80
        return int((x.ln() / Decimal(2).ln()).to_integral_value())


@given(st.integers(1, 62))
def test_nearest_point_width_exact_at_the_half_way_points(k: int) -> None:
    # 2**k * sqrt(2) lies between two integers: the floor rounds down, the ceiling up.
    from decimal import localcontext

    with localcontext() as ctx:
        ctx.prec = 60
        middle = Decimal(2) ** k * Decimal(2).sqrt()
    below, above = int(middle), int(middle) + 1
    assert int(timez.nearest_point_width(nanoseconds=below)) == _log2_rounded_by_decimal(Decimal(below)) == k
    assert (
        int(timez.nearest_point_width(nanoseconds=above)) == _log2_rounded_by_decimal(Decimal(above)) == k + 1
    )


@given(st.decimals(min_value=Decimal("0.001"), max_value=Decimal("1e8"), places=3))
def test_nearest_point_width_from_hertz_matches_decimal_oracle(hz: Decimal) -> None:
    expected = _log2_rounded_by_decimal(Decimal(10**9) / hz)
    assert int(timez.nearest_point_width(hertz=hz)) == min(max(expected, 0), 63)


def test_nearest_point_width_keeps_sub_nanosecond_fractions_and_rejects_negatives() -> None:
    assert int(timez.nearest_point_width(microseconds=0.0004)) == 0
    assert int(timez.nearest_point_width(days=1, hours=-1)) == _log2_rounded_by_decimal(
        Decimal(23 * 3600 * 10**9)
    )
    with pytest.raises(ValueError, match="positive"):
        timez.nearest_point_width(seconds=-1)
    with pytest.raises(ValueError, match="positive"):
        timez.nearest_point_width(hertz=-5)
