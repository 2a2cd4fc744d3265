"""Type checks of device and unit fields, shared by both tables."""

from __future__ import annotations

import math
from typing import Any

from pingthings.server.errors import MissingParameter, WrongArgs

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


def text_or_none(kind: str, field: str, value: Any) -> str | None:
    """Accept text or ``None``."""
    if value is None or isinstance(value, str):
        return value
    raise WrongArgs(f"{kind} field {field!r} must be a string, not {type(value).__name__}")


def float_or_none(kind: str, field: str, value: Any) -> float | None:
    """Accept a finite number (not a bool) or ``None``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise WrongArgs(f"{kind} field {field!r} must be a finite number, not {value!r}")
    return float(value)


def int_or_none(kind: str, field: str, value: Any) -> int | None:
    """Accept a 64-bit integer (not a bool) or ``None``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not INT64_MIN <= value <= INT64_MAX:
        raise WrongArgs(f"{kind} field {field!r} must be a 64-bit integer, not {value!r}")
    return value


def bool_or_none(kind: str, field: str, value: Any) -> bool | None:
    """Accept a bool or ``None``."""
    if value is None or isinstance(value, bool):
        return value
    raise WrongArgs(f"{kind} field {field!r} must be true or false, not {value!r}")


def required_name(kind: str, value: Any) -> str:
    """The ``name`` of a device or unit: non-empty text (MissingParameter otherwise)."""
    if value is None or value == "":
        raise MissingParameter(f"a {kind} needs a name: 'name' can not be None or an empty string")
    if not isinstance(value, str):
        raise WrongArgs(f"{kind} field 'name' must be a string, not {type(value).__name__}")
    return value


def object_id(kind: str, value: Any) -> int:
    """A row id: a 64-bit integer (MissingParameter when absent)."""
    if value is None:
        raise MissingParameter(f"the {kind} 'id' is required")
    checked = int_or_none(kind, "id", value)
    assert checked is not None
    return checked
