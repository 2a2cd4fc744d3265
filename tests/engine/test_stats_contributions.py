"""Contributions: raw points and tree slots combined into window statistics, against numpy.

The reference is numpy over each window's points (two-pass population standard deviation); raw
points alone (one part: the short-query path) and mixed parts (slots and points, several scan
batches) must both give it.
"""

from __future__ import annotations

import numpy as np
import pytest

from pingthings.server.engine.stats import Contributions


def reference(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(keys, count, min, mean, max, stddev)`` of each distinct key, by numpy per window."""
    uniq = np.unique(keys)
    groups = [values[keys == k] for k in uniq]
    return (
        uniq,
        np.array([g.size for g in groups], dtype=np.uint64),
        np.array([g.min() for g in groups]),
        np.array([g.mean() for g in groups]),
        np.array([g.max() for g in groups]),
        np.array([g.std() for g in groups]),
    )


def check(found: tuple[np.ndarray, ...], expected: tuple[np.ndarray, ...]) -> None:
    names = ("keys", "count", "min", "mean", "max", "stddev")
    for name, a, b in zip(names, found, expected, strict=True):
        if name in ("keys", "count", "min", "max"):
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=name)
    assert found[1].dtype == np.uint64


@pytest.mark.parametrize("per_window", [1, 3, 64, 1000])
def test_raw_points_alone_give_numpys_statistics(per_window: int) -> None:
    rng = np.random.default_rng(per_window)
    values = 7200 + rng.normal(0, 0.05, 5000)
    keys = np.sort(rng.integers(0, max(1, 5000 // per_window), 5000)).astype(np.int64)
    parts = Contributions()
    parts.add_points(keys, values)
    check(parts.combine(), reference(keys, values))


def test_points_split_over_parts_and_slots_are_merged_per_window() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(3.0, 2.0, 3000)
    keys = np.repeat(np.arange(30, dtype=np.int64), 100)
    parts = Contributions()
    parts.add_points(keys[:1050], values[:1050])  # window 10 is cut between two scan batches
    parts.add_points(keys[1050:2000], values[1050:2000])
    # the last 1,000 points as slots of 50 points each, two slots per window
    slot = np.arange(2000, 3000).reshape(-1, 50)
    chunks = values[slot]
    mean = chunks.mean(axis=1)
    parts.add_slots(
        keys[slot[:, 0]],
        np.full(len(slot), 50, dtype=np.int64),
        chunks.min(axis=1),
        chunks.max(axis=1),
        chunks.sum(axis=1),
        ((chunks - mean[:, None]) ** 2).sum(axis=1),
    )
    check(parts.combine(), reference(keys, values))


def test_no_parts_give_no_windows() -> None:
    found = Contributions().combine()
    assert [a.size for a in found] == [0] * 6
    assert found[1].dtype == np.uint64
