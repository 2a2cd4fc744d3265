"""The demo's substation: two PMUs, twelve 120 Hz phasor streams, their devices and units."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID, uuid5

#: Samples per second of every demo stream (a 120 frames/s PMU on a 60 Hz grid).
SAMPLE_RATE_HZ = 120
#: Nominal grid frequency in Hz.
NOMINAL_HZ = 60.0
#: Root collection of the demo; each device gets a sub-collection.
COLLECTION_ROOT = "demo/substation_a"
#: Fixed namespace so the demo's stream UUIDs are the same on every run.
_UUID_NAMESPACE = UUID("0b6f5a3e-8f3c-4c59-9a51-7d0c2f1e6a42")

PHASES = ("A", "B", "C")


@dataclass(frozen=True)
class Unit:
    """A unit of measure as the platform stores it."""

    name: str
    symbol: str
    source_name: tuple[str, ...]


@dataclass(frozen=True)
class Device:
    """A measuring device (a PMU) and the sub-collection its streams live in."""

    name: str
    description: str
    vendor: str
    model_name: str

    @property
    def collection(self) -> str:
        """The collection holding this device's streams."""
        return f"{COLLECTION_ROOT}/{self.name}"


@dataclass(frozen=True)
class StreamSpec:
    """One demo stream: what it measures, on which device, in which unit.

    ``quantity`` is ``"voltage"`` or ``"current"``; ``kind`` is ``"magnitude"`` or ``"angle"``.
    """

    device: Device
    name: str
    quantity: str
    kind: str
    phase: str
    unit: Unit
    tags: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def uuid(self) -> UUID:
        """A stable UUID derived from the collection and name."""
        return uuid5(_UUID_NAMESPACE, f"{self.device.collection}/{self.name}")

    @property
    def label(self) -> str:
        """``DEVICE/NAME``, short enough for a table column."""
        return f"{self.device.name}/{self.name}"

    def stream_tags(self, device_id: int | None = None) -> dict[str, str]:
        """The tags the stream is created with: name, unit, report rate and (if known) the device id."""
        tags = {"name": self.name, "unit": self.unit.name, "samples_per_second": str(SAMPLE_RATE_HZ)}
        if device_id is not None:
            tags["device_id"] = str(device_id)
        return tags

    def stream_annotations(self) -> dict[str, str]:
        """Annotations describing the measurement, queryable through SQL."""
        return {
            "device": self.device.name,
            "phase": self.phase,
            "quantity": self.quantity,
            "kind": self.kind,
        }


VOLTS = Unit("volts", "V", ("VPHM", "voltage"))
AMPS = Unit("amps", "A", ("IPHM", "current"))
DEGREES = Unit("degrees", "deg", ("VPHA", "IPHA", "deg"))
UNITS = (VOLTS, AMPS, DEGREES)

BUS_PMU = Device("BUS1_PMU", "12.47 kV bus voltage PMU", "Demo Instruments", "PMU-120")
FEEDER_PMU = Device("FDR3_PMU", "Feeder 3 current PMU", "Demo Instruments", "PMU-120")
DEVICES = (BUS_PMU, FEEDER_PMU)


def _specs() -> tuple[StreamSpec, ...]:
    specs: list[StreamSpec] = []
    layout = ((BUS_PMU, "voltage", "V", VOLTS), (FEEDER_PMU, "current", "I", AMPS))
    for device, quantity, letter, unit in layout:
        for phase in PHASES:
            specs.append(StreamSpec(device, f"{letter}PHM_{phase}", quantity, "magnitude", phase, unit))
            specs.append(StreamSpec(device, f"{letter}PHA_{phase}", quantity, "angle", phase, DEGREES))
    return tuple(specs)


#: The twelve demo streams: |V| and ∠V per phase on the bus PMU, |I| and ∠I per phase on the feeder PMU.
STREAMS: tuple[StreamSpec, ...] = _specs()
