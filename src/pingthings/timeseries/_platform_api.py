"""The platform extension calls of :class:`~pingthings.timeseries.async_client.AsyncClient`: collection
retention, devices and units.

They go to the ``pingthings.platform.v1.Platform`` service, which the embedded server (and PredictiveGrid
platforms that offer it) serve next to ``v5api.BTrDB``; a stock BTrDB server has no such service, and
every call here then raises :class:`~pingthings.timeseries.exceptions.NotImplementedByServerError` naming
the capability (see :mod:`pingthings.timeseries._platform_rpc`). :class:`PlatformCalls` is a base class
of ``AsyncClient``, so these are ordinary client methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from pingthings._proto.pingthings.platform import v1 as platform
from pingthings.timeseries import _platform_codec as codec
from pingthings.timeseries._platform_rpc import call_platform

if TYPE_CHECKING:
    from pingthings.timeseries._rpc import CallTarget


def _check_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    return value


class PlatformCalls:
    """Collection retention, devices and units (the platform extension service)."""

    @property
    def _platform_client(self) -> CallTarget:
        return cast("CallTarget", self)

    # -------------------------------------------------------------------------- collections
    async def get_collection_properties(self, collection: str) -> dict[str, Any]:
        """Properties of a collection: ``{'retention': {'remove_older_than': timedelta | None}}``."""
        params = platform.GetCollectionPropertiesParams(collection=_check_str(collection, "collection"))
        response = await call_platform(
            self._platform_client,
            "GetCollectionProperties",
            params,
            platform.CollectionPropertiesResponse,
        )
        return {"retention": codec.retention_to_dict(response.retention)}

    async def set_collection_retention(
        self, collection: str, override_per_stream: bool = False, remove_older_than: Any = None
    ) -> None:
        """Set the retention policy of a collection.

        Parameters
        ----------
        collection
            The collection.
        override_per_stream
            Whether this policy overrides policies set on single streams.
        remove_older_than
            Data older than this (a ``datetime.timedelta``, or int nanoseconds) is removed; None
            disables trimming.
        """
        params = platform.SetCollectionRetentionParams(
            collection=_check_str(collection, "collection"),
            retention=codec.retention_message(override_per_stream, remove_older_than),
        )
        await call_platform(
            self._platform_client,
            "SetCollectionRetention",
            params,
            platform.StatusResponse,
        )

    # ---------------------------------------------------------------------------------- devices
    async def create_device(self, device: dict[str, Any]) -> dict[str, Any]:
        """Create a device; returns it with its new ``id`` (``enabled`` defaults to True).

        ``name`` must be a non-empty string, and no two devices may share name and geo.
        """
        message = codec.device_to_message(device, with_id=False, require_name=True)
        response = await call_platform(
            self._platform_client,
            "CreateDevice",
            platform.CreateDeviceParams(device=message),
            platform.DeviceResponse,
        )
        return codec.device_to_dict(response.device)

    async def get_device(self, device_id: int) -> dict[str, Any]:
        """The device with this id (ObjectNotFoundError if there is none)."""
        request = platform.ObjectId(id=codec.check_id(device_id, "device_id"))
        response = await call_platform(
            self._platform_client,
            "GetDevice",
            request,
            platform.DeviceResponse,
        )
        return codec.device_to_dict(response.device)

    async def list_devices(self) -> list[dict[str, Any]]:
        """Every device the caller may see."""
        response = await call_platform(
            self._platform_client,
            "ListDevices",
            platform.ListDevicesParams(),
            platform.ListDevicesResponse,
        )
        return [codec.device_to_dict(d) for d in response.devices]

    async def update_device(self, device: dict[str, Any], replace: bool = False) -> dict[str, Any]:
        """Update the device whose id is ``device["id"]``; returns the whole updated device.

        Without ``replace`` only the given fields change. With ``replace=True`` every field not
        given is cleared (``enabled`` becomes True and ``geo`` is kept), so ``name`` is required.
        """
        if not isinstance(replace, bool):
            raise TypeError(f"replace must be a bool, got {type(replace).__name__}")
        message = codec.device_to_message(device, with_id=True, require_name=replace)
        response = await call_platform(
            self._platform_client,
            "UpdateDevice",
            platform.UpdateDeviceParams(device=message, replace=replace),
            platform.DeviceResponse,
        )
        return codec.device_to_dict(response.device)

    async def delete_device(self, device_id: int) -> None:
        """Delete the device with this id."""
        request = platform.ObjectId(id=codec.check_id(device_id, "device_id"))
        await call_platform(self._platform_client, "DeleteDevice", request, platform.StatusResponse)

    # ------------------------------------------------------------------------------------ units
    async def create_unit(
        self, name: str, symbol: str, base: float, canonical: str, source_name: list[str]
    ) -> dict[str, Any]:
        """Create a unit definition; returns it with its new ``id``.

        Parameters
        ----------
        name, symbol
            The unit's name and symbol.
        base
            Factor converting this unit to ``canonical``.
        canonical
            The unit this one converts to.
        source_name
            Other names this unit goes by, e.g. ``["deg", "VPHA"]``.
        """
        message = codec.new_unit_message(name, symbol, base, canonical, source_name)
        response = await call_platform(
            self._platform_client,
            "CreateUnit",
            platform.CreateUnitParams(unit=message),
            platform.UnitResponse,
        )
        return codec.unit_to_dict(response.unit)

    async def get_unit(self, unit_id: int) -> dict[str, Any]:
        """The unit with this id (ObjectNotFoundError if there is none)."""
        request = platform.ObjectId(id=codec.check_id(unit_id, "unit_id"))
        response = await call_platform(self._platform_client, "GetUnit", request, platform.UnitResponse)
        return codec.unit_to_dict(response.unit)

    async def list_units(self) -> list[dict[str, Any]]:
        """Every unit definition."""
        response = await call_platform(
            self._platform_client,
            "ListUnits",
            platform.ListUnitsParams(),
            platform.ListUnitsResponse,
        )
        return [codec.unit_to_dict(u) for u in response.units]

    async def update_unit(self, unit_dict: dict[str, Any]) -> dict[str, Any]:
        """Change the given fields of the unit ``unit_dict["id"]``; returns the whole unit."""
        request = codec.unit_update_message(unit_dict)
        response = await call_platform(
            self._platform_client,
            "UpdateUnit",
            request,
            platform.UnitResponse,
        )
        return codec.unit_to_dict(response.unit)

    async def delete_unit(self, unit_id: int) -> None:
        """Delete the unit with this id."""
        request = platform.ObjectId(id=codec.check_id(unit_id, "unit_id"))
        await call_platform(self._platform_client, "DeleteUnit", request, platform.StatusResponse)
