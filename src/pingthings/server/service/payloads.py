"""The service's single doorway to the point codecs of ``pingthings.wire.points``.

Handlers call these functions only, so the numpy codecs can evolve without touching handlers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pingthings.server.errors import WrongArgs
from pingthings.server.service.arrow_io import WindowSlice
from pingthings.wire import points
from pingthings.wire.points import InsertRequest

__all__ = [
    "InsertRequest",
    "decode_insert",
    "encode_changes",
    "encode_nearest",
    "encode_raw_values",
    "encode_stat_points",
]


def encode_raw_values(version: int, times: np.ndarray, values: np.ndarray) -> bytes:
    """One RawValuesResponse holding the given points."""
    return points.encode_raw_values(times, values, version_major=version)


def encode_stat_points(version: int, windows: Any, start: int, stop: int) -> bytes:
    """One AlignedWindowsResponse / WindowsResponse (same layout) for ``windows[start:stop]``."""
    return points.encode_windows(WindowSlice(windows, start, stop), version_major=version)


def encode_nearest(version: int, time: int, value: float) -> bytes:
    """A NearestResponse holding one point."""
    return points.encode_nearest(time, value, version_major=version)


def encode_changes(version: int, starts: np.ndarray, ends: np.ndarray) -> bytes:
    """One ChangesResponse holding the given ranges."""
    return points.encode_changes(starts, ends, version_major=version)


def decode_insert(data: bytes) -> InsertRequest:
    """Decode InsertParams; malformed payloads or a bad uuid raise WrongArgs (421)."""
    try:
        request = points.decode_insert(data)
    except ValueError as exc:  # WireFormatError is a ValueError
        raise WrongArgs(f"malformed InsertParams message: {exc}") from None
    if len(request.uuid) != 16:
        raise WrongArgs(f"uuid must be 16 bytes, got {len(request.uuid)}")
    return request
