"""Finding the integers behind measured values (decimal-aware value coding, in the spirit of ALP).

Real measurements are rarely arbitrary doubles. A value recorded to three decimals is ``k / 1000``
for an integer ``k``; an ADC sample is ``k * scale``. Stored as float64 bit patterns their
successive differences look like noise in every byte, but the integers ``k`` move by small steps.
This module finds such a representation for one leaf and undoes it bit for bit:

* decimal: ``v == float64(k) / 10**e`` for ``e`` in 0..:data:`MAX_EXPONENT` (IEEE division is
  correctly rounded, so this is exactly the double nearest to the decimal ``k·10^-e``, the value a
  parser or ``round(x, e)`` produces);
* scaled: ``v == float64(k) * s`` for a factor ``s`` found as the smallest gap between the leaf's
  distinct values (integer counts times a calibration factor).

Values that do not fit (NaN with any payload, infinities, -0.0, an odd outlier) are *exceptions*:
their positions and raw bits are stored beside the integers, whose slot then repeats the previous
integer. A transform is used only while exceptions stay rare (:data:`MAX_EXCEPTION_SHARE`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Largest decimal exponent tried (values with up to 10 decimals).
MAX_EXPONENT = 10
#: Integers must stay below this magnitude (exact in float64 with room to spare).
MAX_INTEGER = float(1 << 52)
#: Most exceptions a transform may leave, as a share of the leaf's points.
MAX_EXCEPTION_SHARE = 1 / 16
#: Points looked at to guess the exponent before converting the whole leaf.
SAMPLE = 16
#: Largest q tried when the step is the smallest gap of the sample divided by q.
MAX_DIVISOR = 16
MODE_DECIMAL = 0
MODE_SCALED = 1
_POW10 = np.array([10.0**e for e in range(MAX_EXPONENT + 1)])
_DIVISORS = np.arange(1, MAX_DIVISOR + 1, dtype=np.float64)


class Scaled(NamedTuple):
    """Values written as integers: ``mode`` (decimal or scaled), ``exponent`` or ``factor``, the
    integers (exception slots repeat the previous one), and the exceptions' positions and bits."""

    mode: int
    exponent: int
    factor: float
    ints: np.ndarray
    exc_pos: np.ndarray
    exc_bits: np.ndarray


def _repeat_previous(ints: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """``ints`` with every ``bad`` slot holding the integer before it (so it costs nothing in deltas)."""
    idx = np.where(bad, 0, np.arange(ints.size))
    np.maximum.accumulate(idx, out=idx)
    return ints[idx]


def _decimal_exponent(sample: np.ndarray) -> int | None:
    """The smallest exponent that writes most (3/4) of the finite sample values as integers over
    10**e (the others may be exceptions)."""
    finite = sample[np.isfinite(sample) & (sample != 0)]
    if finite.size == 0:
        return 0
    hits = _exact_decimals(finite)
    return int(hits[0]) if hits.size else None


def _exact_decimals(finite: np.ndarray) -> np.ndarray:
    """Exponents (ascending) that write at least 3/4 of ``finite`` exactly as integers over 10**e."""
    with np.errstate(over="ignore", invalid="ignore"):
        k = np.rint(finite[:, None] * _POW10[None, :])
        exact = (k / _POW10[None, :]).view(np.int64) == finite.view(np.int64)[:, None]
        exact &= np.abs(k) < MAX_INTEGER
    return np.flatnonzero(exact.sum(axis=0) * 4 >= finite.size * 3)


def _try(values: np.ndarray, mode: int, exponent: int, factor: float) -> Scaled | None:
    """The transform with these parameters, or None when it leaves too many exceptions."""
    with np.errstate(over="ignore", invalid="ignore"):
        ints_f = np.rint(values * _POW10[exponent]) if mode == MODE_DECIMAL else np.rint(values / factor)
        ints = np.where(np.abs(ints_f) < MAX_INTEGER, ints_f, 0.0).astype(np.int64)
        # Decode exactly as the reader will: whatever does not come back bit for bit is an exception.
        bad = restore(ints, mode, exponent, factor).view(np.int64) != values.view(np.int64)
    n_bad = int(np.count_nonzero(bad))
    if n_bad > values.size * MAX_EXCEPTION_SHARE:
        return None
    pos = np.flatnonzero(bad)
    if n_bad:
        ints = _repeat_previous(ints, bad)
    return Scaled(mode, exponent, factor, ints, pos.astype(np.uint32), values.view(np.int64)[pos])


def find_integers(values: np.ndarray) -> Scaled | None:
    """A decimal or scaled-integer form of ``values`` (float64), or None if neither fits."""
    n = values.size
    if n < 4:
        return None
    sample = values[:: max(1, n // SAMPLE)]
    exponent = _decimal_exponent(sample)
    if exponent is not None:
        found = _try(values, MODE_DECIMAL, exponent, 0.0)
        if found is not None:
            return found
    if not _has_common_step(sample):  # cheap test on the sample before sorting the whole leaf
        return None
    finite = values[np.isfinite(values)]
    if finite.size < 4:
        return None
    step = _step(finite)
    if step is None:
        return None
    for factor in _factors(finite, step):
        found = _try(values, MODE_SCALED, 0, factor)
        if found is not None:
            return found
    return None


def _factors(finite: np.ndarray, step: float) -> list[float]:
    """Candidate calibration factors near ``step``: the shortest decimal within 1e-9 of it (factors
    are usually written with few digits), the largest values over their counts, and ``step``."""
    out: list[float] = []
    for digits in range(1, 16):
        short = float(f"{step:.{digits}g}")
        if abs(short - step) <= 1e-9 * abs(step):
            out.append(short)
            break
    for big in finite[np.argsort(np.abs(finite))[-2:]].tolist():
        count = round(big / step)
        if count:
            out.append(big / count)
    out.append(step)
    return [f for f in dict.fromkeys(out) if f != 0.0 and np.isfinite(f)]


def _has_common_step(sample: np.ndarray) -> bool:
    """Whether the gaps between the sample's distinct values are whole multiples of one step: the
    smallest gap divided by some q in 1..:data:`MAX_DIVISOR` (the sample may miss neighbouring counts)."""
    vals = np.sort(sample[np.isfinite(sample)])
    if vals.size < 3:
        return False
    gaps = np.diff(vals)
    gaps = gaps[gaps > 0]
    if gaps.size < 2:
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        steps = gaps / gaps.min()
        multiples = steps[:, None] * _DIVISORS[None, :]
        whole = (np.abs(multiples - np.rint(multiples)) <= 1e-6).all(axis=0)
    return bool(whole.any())


def _step(values: np.ndarray) -> float | None:
    """The smallest gap between distinct finite values, if every gap is a whole number of it."""
    gaps = np.diff(np.sort(values[np.isfinite(values)]))
    gaps = gaps[gaps > 0]
    if gaps.size == 0:
        return None
    step = float(gaps.min())
    with np.errstate(over="ignore", invalid="ignore"):
        ratio = gaps / step
        whole = bool(np.all(np.abs(ratio - np.rint(ratio)) <= 1e-6))
    return step if whole and np.isfinite(step) else None


def restore(
    ints: np.ndarray, mode: int, exponent: int, factor: float, out: np.ndarray | None = None
) -> np.ndarray:
    """The float64 values of integers ``ints`` (exceptions not yet patched), into ``out`` if given.

    One pass: the division (or product) converts each int64 to float64 on the way.
    """
    res = np.empty(ints.size, dtype=np.float64) if out is None else out
    if mode == MODE_DECIMAL:
        np.divide(ints, _POW10[exponent], out=res)
    else:
        np.multiply(ints, factor, out=res)
    return res
