"""The CLI's time, duration and address parsing, against independent oracles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pingthings.cli.params import parse_duration, parse_listen, parse_time
from pingthings.wire.limits import MIN_TIME, TIME_LIMIT

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@given(st.datetimes(min_value=datetime(1934, 1, 1), max_value=datetime(2078, 12, 31),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), None])))
def test_iso_times_match_datetime_arithmetic(moment: datetime) -> None:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    expected = (aware - EPOCH) // timedelta(microseconds=1) * 1_000
    assert parse_time(moment.isoformat()) == expected


@given(st.integers(min_value=MIN_TIME, max_value=TIME_LIMIT - 1))
def test_integer_nanoseconds_pass_through(ns: int) -> None:
    assert parse_time(str(ns)) == ns


def test_z_suffix_and_date_only() -> None:
    assert parse_time("1970-01-02") == 86_400 * 10**9
    assert parse_time("2024-06-01T12:00:00Z") == parse_time("2024-06-01 14:00:00+02:00")


@pytest.mark.parametrize(
    "text", ["yesterday", "2024-13-01", "12:00", "", "1e9", str(TIME_LIMIT), "1900-01-01"]
)
def test_bad_times_are_rejected_with_the_text_in_the_message(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_time(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize(("text", "ns"), [
    ("1s", 10**9), ("250ms", 250 * 10**6), ("1.5s", 1_500_000_000), ("5m", 300 * 10**9),
    ("2h", 7_200 * 10**9), ("1d", 86_400 * 10**9), ("17", 17), ("3us", 3_000), ("4ns", 4),
])
def test_durations(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["0s", "-1s", "1 fortnight", "s", "1.2.3s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:4410", ("127.0.0.1", 4410)), ("localhost:0", ("localhost", 0)), ("[::1]:4411", ("::1", 4411)),
])
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1", ":4410", "host:port", "host:70000"])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(text)
