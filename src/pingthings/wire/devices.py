"""The device record as client and server both see it: its fields, which are text, and its geo bounds.

The server's device table (:mod:`pingthings.server.metadata.devices`) and the client's request checks
(:mod:`pingthings.timeseries._platform_codec`) both take their field list from here, so the two cannot
disagree on what a device is.
"""

from __future__ import annotations

#: Fields a caller may set on a device, in the order devices are returned (``id``, assigned by the
#: server, comes first and is not listed).
DEVICE_FIELDS: tuple[str, ...] = (
    "name",
    "device_type",
    "description",
    "geo",
    "elevation",
    "alt_id",
    "alt_name",
    "enabled",
    "owner",
    "protocol",
    "model_name",
    "vendor",
)

#: The optional free-text fields (``name`` is text too, but required and non-empty).
DEVICE_TEXT_FIELDS: tuple[str, ...] = (
    "device_type",
    "description",
    "alt_name",
    "owner",
    "protocol",
    "model_name",
    "vendor",
)

#: The keys of a device's ``geo`` dict.
GEO_KEYS: tuple[str, str] = ("latitude", "longitude")

#: Largest absolute latitude and longitude, in degrees.
MAX_LATITUDE = 90.0
MAX_LONGITUDE = 180.0
