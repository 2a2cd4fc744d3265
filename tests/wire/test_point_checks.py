"""The insert checks shared by client and server agree with numpy's plain element-wise tests."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pingthings.wire.blocks.checked import increasing_slots
from pingthings.wire.point_checks import all_finite, in_order

_any_float = hnp.arrays(
    np.float64, st.integers(0, 300), elements=st.floats(allow_nan=True, allow_infinity=True)
)
_times = hnp.arrays(np.int64, st.integers(0, 300), elements=st.integers(-(2**62), 2**62))


@given(_any_float)
def test_all_finite_is_isfinite_all(values: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning on any input
        assert all_finite(values) is bool(np.isfinite(values).all())


def test_all_finite_names_each_kind_of_non_finite_value() -> None:
    base = np.full(120, 1e308)  # large, finite values: nothing overflows into a false alarm
    assert all_finite(base)
    for bad in (np.nan, np.inf, -np.inf):
        values = base.copy()
        values[77] = bad
        assert not all_finite(values)


@given(_times)
def test_in_order_is_a_sorted_check(times: np.ndarray) -> None:
    assert in_order(times) is bool(np.array_equal(times, np.sort(times)))


@given(st.binary(min_size=1, max_size=70))
def test_increasing_slots_is_strictly_increasing_below_64(slots: bytes) -> None:
    expected = all(a < b for a, b in itertools.pairwise(slots)) and slots[-1] < 64
    assert increasing_slots(slots) is expected
