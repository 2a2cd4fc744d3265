"""The ``pingthings.platform.v1.Platform`` gRPC service over the metadata store and the engine.

Every RPC answers with gRPC status OK; success leaves ``stat`` unset and a failure puts the v5
code and message in ``stat``, exactly as the v5 BTrDB service does. A
:class:`~pingthings.server.errors.ServerError` keeps its code; any other exception becomes 500
with its message, and the service keeps serving. Store and engine calls block, so they run in
worker threads (``anyio.to_thread.run_sync``), never on the event loop.

Proto ``optional`` fields carry presence: a device or unit field that is absent was not given.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio.to_thread

from pingthings._proto.pingthings.platform.v1 import (
    CollectionPropertiesResponse,
    CreateDeviceParams,
    CreateUnitParams,
    Device,
    DeviceResponse,
    Geo,
    GetCollectionPropertiesParams,
    GetStreamRetentionParams,
    ListDevicesParams,
    ListDevicesResponse,
    ListUnitsParams,
    ListUnitsResponse,
    ObjectId,
    PlatformBase,
    Retention,
    SetCollectionRetentionParams,
    SetStreamRetentionParams,
    StatusResponse,
    StreamRetentionResponse,
    Unit,
    UnitResponse,
    UpdateDeviceParams,
    UpdateUnitParams,
    VersionAtTimeParams,
    VersionAtTimeResponse,
)
from pingthings._proto.v5api import Status
from pingthings.server.errors import MissingParameter, UnrecognizedParameter
from pingthings.server.grpc.dispatch import Method
from pingthings.server.limits import DEFAULT_MAX_STREAMS_PER_REQUEST
from pingthings.server.metadata.devices import DEVICE_FIELDS
from pingthings.server.metadata.records import RetentionPolicy
from pingthings.server.metadata.units import UNIT_FIELDS
from pingthings.server.metadata.validation import check_uuid
from pingthings.server.service import rpc
from pingthings.server.service.multi_windows import MultiWindows
from pingthings.server.service.raw_blocks import RawBlocks
from pingthings.server.service.read_gate import ReadGate
from pingthings.server.service.replies import status_of
from pingthings.server.service.visibility import require_visible

log = logging.getLogger("pingthings.server")

R = TypeVar("R")


def _status(exc: BaseException) -> Status:
    return status_of(exc)


# -- devices ---------------------------------------------------------------------------------------


def device_to_dict(device: Device | None, *, keep_id: bool) -> dict[str, Any]:
    """The fields present in a Device message, as the store's device dict."""
    if device is None:
        return {}
    fields: dict[str, Any] = {}
    if keep_id and device.id is not None:
        fields["id"] = device.id
    for field in DEVICE_FIELDS:
        value = getattr(device, field)
        if value is None:
            continue
        fields[field] = (
            {"latitude": value.latitude, "longitude": value.longitude} if field == "geo" else value
        )
    return fields


def device_from_dict(device: dict[str, Any]) -> Device:
    """A Device message from a stored device (``None`` fields stay absent)."""
    message = Device(id=device["id"])
    for field in DEVICE_FIELDS:
        value = device.get(field)
        if value is None:
            continue
        if field == "geo":
            value = Geo(latitude=value["latitude"], longitude=value["longitude"])
        setattr(message, field, value)
    return message


# -- units -----------------------------------------------------------------------------------------


def unit_to_dict(unit: Unit | None) -> dict[str, Any]:
    """The fields present in a Unit message (``source_name`` always, as a list)."""
    if unit is None:
        return {}
    fields: dict[str, Any] = {
        field: getattr(unit, field) for field in UNIT_FIELDS[:-1] if getattr(unit, field) is not None
    }
    fields["source_name"] = list(unit.source_name)
    return fields


def unit_changes(unit: Unit | None, mask: list[str]) -> dict[str, Any]:
    """The changes of an UpdateUnit: the masked fields, or without a mask the present ones."""
    if unit is None or unit.id is None:
        raise MissingParameter("the unit 'id' is required")
    changes: dict[str, Any] = {"id": unit.id}
    if mask:
        unknown = sorted(set(mask) - set(UNIT_FIELDS))
        if unknown:
            raise UnrecognizedParameter(
                f"unknown unit field(s) {unknown}; known fields: {', '.join(UNIT_FIELDS)}"
            )
        for field in mask:
            value = getattr(unit, field)
            changes[field] = list(value) if field == "source_name" else value
    else:
        present = unit_to_dict(unit)
        if not present["source_name"]:
            del present["source_name"]
        changes.update(present)
    return changes


def unit_from_dict(unit: dict[str, Any]) -> Unit:
    """A Unit message from a stored unit."""
    return Unit(
        id=unit["id"],
        name=unit["name"],
        symbol=unit["symbol"],
        base=unit["base"],
        canonical=unit["canonical"],
        source_name=list(unit["source_name"]),
    )


# -- retention -------------------------------------------------------------------------------------


def retention_message(policy: RetentionPolicy | None) -> Retention | None:
    """A Retention message, or ``None`` when there is no policy."""
    if policy is None:
        return None
    return Retention(
        remove_older_than_ns=policy.remove_older_than_ns, override_per_stream=policy.override_per_stream
    )


class PlatformService(PlatformBase):
    """Devices, units, collection properties, retention and version-at-time.

    Parameters
    ----------
    meta
        The :class:`~pingthings.server.metadata.MetadataStore`.
    engine
        The :class:`~pingthings.server.engine.Engine` (for VersionAtTime).
    """

    def __init__(
        self,
        meta: Any,
        engine: Any,
        max_streams_per_request: int = DEFAULT_MAX_STREAMS_PER_REQUEST,
        read_gate: ReadGate | None = None,
    ) -> None:
        self._meta = meta
        self._engine = engine
        multi = MultiWindows(meta, engine, max_streams_per_request)
        self._streaming: dict[str, Callable[[Any], AsyncIterator[Any]]] = {
            "multi_aligned_windows": multi.multi_aligned_windows,
            "raw_blocks": RawBlocks(meta, engine, read_gate).raw_blocks,
        }

    def grpc_methods(self) -> dict[str, Method]:
        """Method path → :class:`~pingthings.server.grpc.dispatch.Method`, for the embedded server.

        The paths and request classes come from the generated service description; every
        Platform RPC is served by the method of the same (snake case) name: the unary ones here,
        the server-streaming MultiAlignedWindows by :class:`.multi_windows.MultiWindows` and
        RawBlocks by :class:`.raw_blocks.RawBlocks`.
        """
        methods: dict[str, Method] = {}
        for path, entry in self.__mapping__().items():
            name = entry.func.__name__.removeprefix("__rpc_")
            if entry.cardinality.name == "UNARY_STREAM":
                methods[path] = rpc.server_stream(self._streaming[name], entry.request_type)
            elif entry.cardinality.name == "UNARY_UNARY":
                methods[path] = rpc.unary(getattr(self, name), entry.request_type)
            else:
                raise TypeError(f"{path}: the Platform service has no client-streaming RPCs")
        return methods

    @staticmethod
    async def _run(fn: Callable[..., R], *args: Any) -> R:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args))

    @staticmethod
    async def _answer(reply: type[Any], work: Callable[[], Awaitable[dict[str, Any]]]) -> Any:
        """Run ``work``; build ``reply`` from its fields, or from the error as ``stat``."""
        try:
            fields = await work()
        except Exception as exc:
            return reply(stat=_status(exc))
        return reply(**fields)

    # -- devices -----------------------------------------------------------------------------

    async def create_device(self, message: CreateDeviceParams) -> DeviceResponse:
        async def work() -> dict[str, Any]:
            device = await self._run(self._meta.create_device, device_to_dict(message.device, keep_id=True))
            return {"device": device_from_dict(device)}

        return await self._answer(DeviceResponse, work)

    async def get_device(self, message: ObjectId) -> DeviceResponse:
        async def work() -> dict[str, Any]:
            return {"device": device_from_dict(await self._run(self._meta.get_device, message.id))}

        return await self._answer(DeviceResponse, work)

    async def list_devices(self, message: ListDevicesParams) -> ListDevicesResponse:
        async def work() -> dict[str, Any]:
            devices = await self._run(self._meta.list_devices)
            return {"devices": [device_from_dict(device) for device in devices]}

        return await self._answer(ListDevicesResponse, work)

    async def update_device(self, message: UpdateDeviceParams) -> DeviceResponse:
        async def work() -> dict[str, Any]:
            fields = device_to_dict(message.device, keep_id=True)
            if "id" not in fields:
                raise MissingParameter("the device 'id' is required to update a device")
            device = await self._run(self._meta.update_device, fields, bool(message.replace))
            return {"device": device_from_dict(device)}

        return await self._answer(DeviceResponse, work)

    async def delete_device(self, message: ObjectId) -> StatusResponse:
        async def work() -> dict[str, Any]:
            await self._run(self._meta.delete_device, message.id)
            return {}

        return await self._answer(StatusResponse, work)

    # -- units -------------------------------------------------------------------------------

    async def create_unit(self, message: CreateUnitParams) -> UnitResponse:
        async def work() -> dict[str, Any]:
            if message.unit is not None and message.unit.id is not None:
                raise UnrecognizedParameter(
                    "unit 'id' is assigned by the server; do not send it to CreateUnit"
                )
            return {
                "unit": unit_from_dict(await self._run(self._meta.create_unit, unit_to_dict(message.unit)))
            }

        return await self._answer(UnitResponse, work)

    async def get_unit(self, message: ObjectId) -> UnitResponse:
        async def work() -> dict[str, Any]:
            return {"unit": unit_from_dict(await self._run(self._meta.get_unit, message.id))}

        return await self._answer(UnitResponse, work)

    async def list_units(self, message: ListUnitsParams) -> ListUnitsResponse:
        async def work() -> dict[str, Any]:
            return {"units": [unit_from_dict(unit) for unit in await self._run(self._meta.list_units)]}

        return await self._answer(ListUnitsResponse, work)

    async def update_unit(self, message: UpdateUnitParams) -> UnitResponse:
        async def work() -> dict[str, Any]:
            changes = unit_changes(message.unit, list(message.fields))
            return {"unit": unit_from_dict(await self._run(self._meta.update_unit, changes))}

        return await self._answer(UnitResponse, work)

    async def delete_unit(self, message: ObjectId) -> StatusResponse:
        async def work() -> dict[str, Any]:
            await self._run(self._meta.delete_unit, message.id)
            return {}

        return await self._answer(StatusResponse, work)

    # -- retention ---------------------------------------------------------------------------

    async def set_collection_retention(self, message: SetCollectionRetentionParams) -> StatusResponse:
        async def work() -> dict[str, Any]:
            policy = message.retention
            if policy is None:
                await self._run(self._meta.clear_collection_retention, message.collection)
            else:
                await self._run(
                    self._meta.set_collection_retention,
                    message.collection,
                    policy.remove_older_than_ns,
                    bool(policy.override_per_stream),
                )
            return {}

        return await self._answer(StatusResponse, work)

    async def get_collection_properties(
        self, message: GetCollectionPropertiesParams
    ) -> CollectionPropertiesResponse:
        async def work() -> dict[str, Any]:
            properties = await self._run(self._meta.get_collection_properties, message.collection)
            return {"retention": retention_message(properties.retention)}

        return await self._answer(CollectionPropertiesResponse, work)

    async def set_stream_retention(self, message: SetStreamRetentionParams) -> StatusResponse:
        async def work() -> dict[str, Any]:
            uuid = require_visible(self._meta, check_uuid(message.uuid))
            policy = message.retention
            if policy is None:
                await self._run(self._meta.clear_stream_retention, uuid)
            else:
                await self._run(
                    self._meta.set_stream_retention,
                    uuid,
                    policy.remove_older_than_ns,
                    bool(policy.override_per_stream),
                )
            return {}

        return await self._answer(StatusResponse, work)

    async def get_stream_retention(self, message: GetStreamRetentionParams) -> StreamRetentionResponse:
        async def work() -> dict[str, Any]:
            own, effective = await self._run(
                self._meta.get_stream_retention, require_visible(self._meta, check_uuid(message.uuid))
            )
            return {"retention": retention_message(own), "effective": retention_message(effective)}

        return await self._answer(StreamRetentionResponse, work)

    # -- versions ----------------------------------------------------------------------------

    async def version_at_time(self, message: VersionAtTimeParams) -> VersionAtTimeResponse:
        async def work() -> dict[str, Any]:
            uuid = require_visible(self._meta, check_uuid(message.uuid))
            return {"version": int(await self._run(self._engine.version_at_time, uuid, message.time))}

        return await self._answer(VersionAtTimeResponse, work)
