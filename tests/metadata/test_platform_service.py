"""The Platform gRPC service end to end: a real grpclib server on 127.0.0.1 and the generated stub.

grpclib runs on asyncio only, so these tests pin anyio to asyncio; the public client is tested
on both backends by the client's own tests.
"""

from __future__ import annotations

import itertools
import uuid as uuidlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpclib.client
import grpclib.server
import numpy as np
import pytest

from pingthings._proto.pingthings.platform.v1 import (
    CreateDeviceParams,
    CreateUnitParams,
    Device,
    Geo,
    GetCollectionPropertiesParams,
    GetStreamRetentionParams,
    ListDevicesParams,
    ListUnitsParams,
    ObjectId,
    PlatformStub,
    Retention,
    SetCollectionRetentionParams,
    SetStreamRetentionParams,
    Unit,
    UpdateDeviceParams,
    UpdateUnitParams,
    VersionAtTimeParams,
)
from pingthings._proto.v5api import Status
from pingthings.server.engine import Engine
from pingthings.server.metadata import MetadataStore
from pingthings.server.metadata.schema import DEFAULT_UNITS
from pingthings.server.service.platform import PlatformService
from pingthings.wire.status import StatusCode

DAY = 86_400 * 10**9


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class StepClock:
    """Wall clock for the engine: 1 s further on every reading."""

    def __init__(self, start: int = 1_700_000_000_000_000_000) -> None:
        self._ticks = itertools.count(start, 1_000_000_000)
        self.last = start

    def __call__(self) -> int:
        self.last = next(self._ticks)
        return self.last


@dataclass
class Platform:
    stub: PlatformStub
    meta: MetadataStore
    engine: Engine


@pytest.fixture
def engine_clock() -> StepClock:
    return StepClock()


@pytest.fixture
def stores(tmp_path: Path, engine_clock: StepClock) -> Iterator[tuple[MetadataStore, Engine]]:
    meta = MetadataStore(tmp_path / "meta.sqlite")
    engine = Engine(tmp_path / "engine.sqlite", clock=engine_clock)
    yield meta, engine
    engine.close()
    meta.close()


@pytest.fixture
async def platform(stores: tuple[MetadataStore, Engine]) -> AsyncIterator[Platform]:
    meta, engine = stores
    server = grpclib.server.Server([PlatformService(meta, engine)])
    await server.start("127.0.0.1", 0)
    port = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    channel = grpclib.client.Channel("127.0.0.1", port)
    try:
        yield Platform(PlatformStub(channel), meta, engine)
    finally:
        channel.close()
        server.close()
        await server.wait_closed()


def code(stat: Status | None) -> int:
    return 0 if stat is None else stat.code


def make_stream(meta: MetadataStore, engine: Engine, collection: str, name: str) -> bytes:
    uid = uuidlib.uuid4().bytes
    meta.create_stream(uid, collection, {"name": name}, {})
    engine.create_stream(uid)
    return uid


@pytest.mark.anyio
async def test_devices(platform: Platform) -> None:
    stub = platform.stub
    created = await stub.create_device(
        CreateDeviceParams(device=Device(name="pmu-1", geo=Geo(latitude=40.5, longitude=-75.25), alt_id=7))
    )
    assert code(created.stat) == 0
    device = created.device
    assert device is not None and device.id is not None
    assert (device.name, device.alt_id, device.enabled, device.vendor) == ("pmu-1", 7, True, None)
    assert device.geo is not None and (device.geo.latitude, device.geo.longitude) == (40.5, -75.25)
    assert platform.meta.get_device(device.id)["geo"] == {"latitude": 40.5, "longitude": -75.25}

    duplicate = await stub.create_device(
        CreateDeviceParams(device=Device(name="pmu-1", geo=Geo(latitude=40.5, longitude=-75.25)))
    )
    assert code(duplicate.stat) == StatusCode.ALREADY_EXISTS
    elsewhere = await stub.create_device(
        CreateDeviceParams(
            device=Device(name="pmu-1", geo=Geo(latitude=41.0, longitude=-75.25), vendor="SEL")
        )
    )
    assert code(elsewhere.stat) == 0
    for missing in (Device(), Device(name="")):
        reply = await stub.create_device(CreateDeviceParams(device=missing))
        assert code(reply.stat) == StatusCode.MISSING_PARAMETER and "name" in reply.stat.msg  # type: ignore[union-attr]
    with_id = await stub.create_device(CreateDeviceParams(device=Device(id=99, name="x")))
    assert code(with_id.stat) == StatusCode.UNRECOGNIZED_PARAMETER

    listed = await stub.list_devices(ListDevicesParams())
    assert [d.name for d in listed.devices] == ["pmu-1", "pmu-1"]
    assert len(listed.devices) == len(platform.meta.list_devices())

    partial = await stub.update_device(UpdateDeviceParams(device=Device(id=device.id, owner="grid co")))
    assert partial.device is not None
    assert (partial.device.name, partial.device.owner, partial.device.alt_id) == ("pmu-1", "grid co", 7)
    renamed_to_clash = await stub.update_device(
        UpdateDeviceParams(device=Device(id=elsewhere.device.id, geo=Geo(latitude=40.5, longitude=-75.25)))  # type: ignore[union-attr]
    )
    assert code(renamed_to_clash.stat) == StatusCode.ALREADY_EXISTS

    replace_without_name = await stub.update_device(
        UpdateDeviceParams(device=Device(id=device.id, owner="x"), replace=True)
    )
    assert code(replace_without_name.stat) == StatusCode.MISSING_PARAMETER
    replaced = await stub.update_device(
        UpdateDeviceParams(device=Device(id=device.id, name="pmu-1b", enabled=False), replace=True)
    )
    assert replaced.device is not None
    assert (replaced.device.owner, replaced.device.alt_id, replaced.device.enabled) == (None, None, False)
    assert replaced.device.geo is not None and replaced.device.geo.latitude == 40.5  # geo kept
    replaced_again = await stub.update_device(
        UpdateDeviceParams(device=Device(id=device.id, name="pmu-1b"), replace=True)
    )
    assert replaced_again.device is not None and replaced_again.device.enabled is True

    unknown = await stub.get_device(ObjectId(id=12345))
    assert code(unknown.stat) == StatusCode.OBJECT_NOT_FOUND
    update_unknown = await stub.update_device(UpdateDeviceParams(device=Device(id=12345, name="n")))
    assert code(update_unknown.stat) == StatusCode.OBJECT_NOT_FOUND
    update_without_id = await stub.update_device(UpdateDeviceParams(device=Device(name="n")))
    assert code(update_without_id.stat) == StatusCode.MISSING_PARAMETER

    assert code((await stub.delete_device(ObjectId(id=device.id))).stat) == 0
    assert code((await stub.get_device(ObjectId(id=device.id))).stat) == StatusCode.OBJECT_NOT_FOUND
    assert code((await stub.delete_device(ObjectId(id=device.id))).stat) == StatusCode.OBJECT_NOT_FOUND


@pytest.mark.anyio
async def test_units(platform: Platform) -> None:
    stub = platform.stub
    defaults = await stub.list_units(ListUnitsParams())
    assert [u.name for u in defaults.units] == [unit[0] for unit in DEFAULT_UNITS]
    volts = defaults.units[0]
    assert (volts.symbol, volts.base, volts.canonical) == ("V", 1.0, "volts")

    created = await stub.create_unit(
        CreateUnitParams(
            unit=Unit(name="millivolts", symbol="mV", base=0.001, canonical="volts", source_name=["MV", "mv"])
        )
    )
    assert code(created.stat) == 0 and created.unit is not None and created.unit.id is not None
    unit_id = created.unit.id
    fetched = await stub.get_unit(ObjectId(id=unit_id))
    assert fetched.unit is not None
    assert (fetched.unit.name, fetched.unit.base, fetched.unit.source_name) == (
        "millivolts",
        0.001,
        ["MV", "mv"],
    )

    assert (
        code((await stub.create_unit(CreateUnitParams(unit=Unit(name="volts")))).stat)
        == StatusCode.ALREADY_EXISTS
    )
    assert (
        code((await stub.create_unit(CreateUnitParams(unit=Unit(symbol="x")))).stat)
        == StatusCode.MISSING_PARAMETER
    )
    assert code((await stub.create_unit(CreateUnitParams(unit=Unit(id=5, name="y")))).stat) == (
        StatusCode.UNRECOGNIZED_PARAMETER
    )

    renamed = await stub.update_unit(UpdateUnitParams(unit=Unit(id=unit_id, name="millivolt")))
    assert renamed.unit is not None
    assert (renamed.unit.name, renamed.unit.symbol, renamed.unit.source_name) == (
        "millivolt",
        "mV",
        ["MV", "mv"],
    )
    cleared = await stub.update_unit(
        UpdateUnitParams(unit=Unit(id=unit_id), fields=["source_name", "symbol"])
    )
    assert cleared.unit is not None and (cleared.unit.source_name, cleared.unit.symbol) == ([], None)
    bad_mask = await stub.update_unit(UpdateUnitParams(unit=Unit(id=unit_id), fields=["colour"]))
    assert code(bad_mask.stat) == StatusCode.UNRECOGNIZED_PARAMETER
    clash = await stub.update_unit(UpdateUnitParams(unit=Unit(id=unit_id, name="amps")))
    assert code(clash.stat) == StatusCode.ALREADY_EXISTS
    empty_name = await stub.update_unit(UpdateUnitParams(unit=Unit(id=unit_id, name=""), fields=["name"]))
    assert code(empty_name.stat) == StatusCode.MISSING_PARAMETER
    assert (
        code((await stub.update_unit(UpdateUnitParams(unit=Unit(name="z")))).stat)
        == StatusCode.MISSING_PARAMETER
    )
    assert code((await stub.update_unit(UpdateUnitParams(unit=Unit(id=10**6, name="z")))).stat) == (
        StatusCode.OBJECT_NOT_FOUND
    )

    assert code((await stub.delete_unit(ObjectId(id=unit_id))).stat) == 0
    assert code((await stub.get_unit(ObjectId(id=unit_id))).stat) == StatusCode.OBJECT_NOT_FOUND
    after = await stub.list_units(ListUnitsParams())
    assert [u.name for u in after.units] == [unit[0] for unit in DEFAULT_UNITS]


@pytest.mark.anyio
async def test_retention_rpcs(platform: Platform) -> None:
    stub, meta, engine = platform.stub, platform.meta, platform.engine
    uid = make_stream(meta, engine, "grid/sub1", "a")

    unknown = await stub.get_collection_properties(GetCollectionPropertiesParams(collection="nothing"))
    assert code(unknown.stat) == StatusCode.OBJECT_NOT_FOUND
    none_yet = await stub.get_collection_properties(GetCollectionPropertiesParams(collection="grid/sub1"))
    assert code(none_yet.stat) == 0 and none_yet.retention is None

    week = Retention(remove_older_than_ns=7 * DAY, override_per_stream=False)
    assert code((await stub.set_collection_retention(SetCollectionRetentionParams("grid", week))).stat) == 0
    props = await stub.get_collection_properties(GetCollectionPropertiesParams(collection="grid"))
    assert props.retention is not None and props.retention.remove_older_than_ns == 7 * DAY
    bad = Retention(remove_older_than_ns=-5)
    assert code((await stub.set_collection_retention(SetCollectionRetentionParams("grid", bad))).stat) == (
        StatusCode.WRONG_ARGS
    )
    assert code((await stub.set_collection_retention(SetCollectionRetentionParams("", week))).stat) == (
        StatusCode.INVALID_COLLECTION
    )

    reply = await stub.get_stream_retention(GetStreamRetentionParams(uuid=uid))
    assert reply.retention is None
    assert reply.effective is not None and reply.effective.remove_older_than_ns == 7 * DAY

    day = Retention(remove_older_than_ns=DAY)
    assert (
        code((await stub.set_stream_retention(SetStreamRetentionParams(uuid=uid, retention=day))).stat) == 0
    )
    reply = await stub.get_stream_retention(GetStreamRetentionParams(uuid=uid))
    assert reply.retention is not None and reply.retention.remove_older_than_ns == DAY
    assert reply.effective is not None and reply.effective.remove_older_than_ns == DAY

    forced = Retention(remove_older_than_ns=30 * DAY, override_per_stream=True)
    await stub.set_collection_retention(SetCollectionRetentionParams("grid", forced))
    reply = await stub.get_stream_retention(GetStreamRetentionParams(uuid=uid))
    assert reply.effective is not None and reply.effective.remove_older_than_ns == 30 * DAY
    assert reply.effective.override_per_stream

    await stub.set_collection_retention(SetCollectionRetentionParams("grid", None))
    await stub.set_stream_retention(SetStreamRetentionParams(uuid=uid, retention=None))
    reply = await stub.get_stream_retention(GetStreamRetentionParams(uuid=uid))
    assert reply.retention is None and reply.effective is None
    assert code((await stub.get_collection_properties(GetCollectionPropertiesParams("grid"))).stat) == (
        StatusCode.OBJECT_NOT_FOUND
    )

    ghost = uuidlib.uuid4().bytes
    assert code((await stub.get_stream_retention(GetStreamRetentionParams(uuid=ghost))).stat) == 404
    assert (
        code((await stub.set_stream_retention(SetStreamRetentionParams(uuid=ghost, retention=day))).stat)
        == 404
    )
    assert code((await stub.get_stream_retention(GetStreamRetentionParams(uuid=b"short"))).stat) == (
        StatusCode.WRONG_ARGS
    )


@pytest.mark.anyio
async def test_version_at_time(platform: Platform, engine_clock: StepClock) -> None:
    stub, meta, engine = platform.stub, platform.meta, platform.engine
    uid = make_stream(meta, engine, "v", "a")
    commits = [(engine.latest_version(uid), engine_clock.last)]
    for batch in range(3):
        version = engine.insert(uid, np.array([batch], dtype=np.int64), np.array([1.0]))
        commits.append((version, engine_clock.last))
    assert len({version for version, _ in commits}) == len(commits)
    for version, wall in commits:
        for probe in (wall, wall + 1):
            reply = await stub.version_at_time(VersionAtTimeParams(uuid=uid, time=probe))
            assert code(reply.stat) == 0 and reply.version == version
    before = await stub.version_at_time(VersionAtTimeParams(uuid=uid, time=commits[0][1] - 1))
    assert code(before.stat) == StatusCode.VERSION_NOT_AVAILABLE
    missing = await stub.version_at_time(VersionAtTimeParams(uuid=uuidlib.uuid4().bytes, time=0))
    assert code(missing.stat) == StatusCode.NO_SUCH_STREAM
    short = await stub.version_at_time(VersionAtTimeParams(uuid=b"", time=0))
    assert code(short.stat) == StatusCode.WRONG_ARGS


class ExplodingStore:
    """A store whose every call fails with an unexpected error (not a ServerError)."""

    def list_units(self) -> list[dict[str, object]]:
        raise RuntimeError("disk on fire")


@pytest.mark.anyio
async def test_unexpected_error_becomes_500_and_service_keeps_serving() -> None:
    server = grpclib.server.Server([PlatformService(ExplodingStore(), None)])
    await server.start("127.0.0.1", 0)
    port = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    channel = grpclib.client.Channel("127.0.0.1", port)
    try:
        stub = PlatformStub(channel)
        for _ in range(2):
            reply = await stub.list_units(ListUnitsParams())
            # The detail stays in the server log; the caller gets an incident id (issue 12).
            assert code(reply.stat) == 500 and "incident" in reply.stat.msg  # type: ignore[union-attr]
            assert "disk on fire" not in reply.stat.msg and "RuntimeError" not in reply.stat.msg  # type: ignore[union-attr]
        missing = await stub.get_unit(ObjectId(id=1))  # AttributeError inside: also 500
        assert code(missing.stat) == 500
    finally:
        channel.close()
        server.close()
        await server.wait_closed()
