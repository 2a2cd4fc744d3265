"""The demo's synthetic substation: shape, timing and the fault the tour relies on."""

from __future__ import annotations

import numpy as np

from pingthings.demo.signals import NS_PER_S, fault_for, generate
from pingthings.demo.substation import SAMPLE_RATE_HZ, STREAMS

START = 1_717_243_200_000_000_000


def test_twelve_streams_with_unique_uuids_and_names() -> None:
    assert len(STREAMS) == 12
    assert len({s.uuid for s in STREAMS}) == 12
    assert len({(s.device.collection, s.name) for s in STREAMS}) == 12
    assert {s.unit.name for s in STREAMS} == {"volts", "amps", "degrees"}


def test_samples_are_at_120_hz_and_exact() -> None:
    data = generate(START, 10.0)
    for times, values in data.values():
        assert times.dtype == np.int64 and values.dtype == np.float64
        assert len(times) == 10 * SAMPLE_RATE_HZ
        expected = START + np.arange(len(times), dtype=np.int64) * NS_PER_S // SAMPLE_RATE_HZ
        np.testing.assert_array_equal(times, expected)
        assert np.all(np.isfinite(values))


def test_same_seed_same_values() -> None:
    a, b = generate(START, 5.0, seed=3), generate(START, 5.0, seed=3)
    for spec in STREAMS:
        np.testing.assert_array_equal(a[spec][1], b[spec][1])


def test_fault_sags_phase_a_voltage_and_raises_phase_a_current() -> None:
    seconds = 20.0
    data = generate(START, seconds)
    fault = fault_for(START, int(seconds * SAMPLE_RATE_HZ))
    by_name = {s.name: data[s] for s in STREAMS}
    times, volts = by_name["VPHM_A"]
    inside = (times >= fault.start_ns) & (times < fault.end_ns)
    before = times < fault.start_ns
    assert inside.sum() == 18  # 150 ms at 120 Hz
    assert volts[inside].max() < 0.8 * volts[before].mean()
    amps = by_name["IPHM_A"][1]
    assert amps[inside].min() > 2 * amps[before].mean()
    for name in ("VPHA_A", "IPHA_B"):
        angles = by_name[name][1]
        assert angles.min() >= -180 and angles.max() < 180
