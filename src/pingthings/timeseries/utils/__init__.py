"""Helpers for nanosecond timestamps and point widths (also reachable as ``pt.utils.<name>``)."""

from pingthings.timeseries.utils.timez import (
    currently_as_ns,
    datetime_to_ns,
    nearest_point_width,
    ns_delta,
    ns_to_datetime,
    to_nanoseconds,
)

__all__ = [
    "currently_as_ns",
    "datetime_to_ns",
    "nearest_point_width",
    "ns_delta",
    "ns_to_datetime",
    "to_nanoseconds",
]
