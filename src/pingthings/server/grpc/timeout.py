"""The ``grpc-timeout`` request header: an ASCII integer of at most 8 digits and a unit."""

from __future__ import annotations

_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}


def parse_timeout(value: bytes) -> float:
    """Seconds from a ``grpc-timeout`` value such as ``b"250m"``.

    Raises
    ------
    ValueError
        When the value is not 1-8 digits followed by one of ``HMSmun``.
    """
    digits, unit = value[:-1], value[-1:]
    scale = _UNITS.get(unit)
    if scale is None or not 1 <= len(digits) <= 8 or not digits.isdigit():
        raise ValueError(f"invalid grpc-timeout {value!r}")
    return int(digits) * scale
