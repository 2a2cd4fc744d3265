"""Synthetic 120 Hz phasor measurements for the demo substation.

The signals are simple but behave like the real thing: a grid frequency that wanders around
60 Hz (so the phase angles rotate), balanced three-phase voltages with a little imbalance and
noise, a feeder load that drifts, and one single-phase fault — phase A voltage sags and phase A
current jumps for a few cycles — so the statistics and the envelope plot have something to show.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pingthings.demo.substation import SAMPLE_RATE_HZ, STREAMS, StreamSpec

NS_PER_S = 1_000_000_000
#: Nominal line-to-neutral voltage of a 12.47 kV feeder, volts.
NOMINAL_VOLTS = 7_200.0
#: Average feeder current, amps.
NOMINAL_AMPS = 350.0
#: Load power-factor angle (current lags voltage), degrees.
POWER_FACTOR_DEG = 25.0
#: Angle offsets of phases A, B, C, degrees.
PHASE_OFFSET_DEG = {"A": 0.0, "B": -120.0, "C": 120.0}


@dataclass(frozen=True)
class FaultEvent:
    """A single-phase-to-ground fault on phase A, as seen by the PMUs."""

    start_ns: int
    duration_ns: int

    @property
    def end_ns(self) -> int:
        """First time after the fault."""
        return self.start_ns + self.duration_ns


def sample_times(start_ns: int, n_samples: int) -> npt.NDArray[np.int64]:
    """Timestamps of ``n_samples`` samples at :data:`SAMPLE_RATE_HZ` from ``start_ns`` (exact integer ns)."""
    index = np.arange(n_samples, dtype=np.int64)
    return start_ns + (index * NS_PER_S) // SAMPLE_RATE_HZ


def wrap_degrees(angle: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Wrap angles into [-180, 180)."""
    return (angle + 180.0) % 360.0 - 180.0


def fault_for(start_ns: int, n_samples: int) -> FaultEvent:
    """The demo fault: 150 ms long, 40 % of the way into the data."""
    offset = (n_samples * 2 // 5) * NS_PER_S // SAMPLE_RATE_HZ
    return FaultEvent(start_ns + offset, 150_000_000)


def generate(start_ns: int, seconds: float, seed: int = 7) -> dict[StreamSpec, tuple[np.ndarray, np.ndarray]]:
    """Synthesise every demo stream over ``seconds`` of data starting at ``start_ns``.

    Parameters
    ----------
    start_ns
        Time of the first sample, ns since the epoch.
    seconds
        Length of the data; ``seconds * 120`` samples per stream.
    seed
        Seed of the noise, so two runs produce the same values.

    Returns
    -------
    dict
        For each :class:`StreamSpec` in :data:`STREAMS`, ``(times int64, values float64)``.
    """
    n = round(seconds * SAMPLE_RATE_HZ)
    if n <= 0:
        raise ValueError(f"the demo needs a positive duration, got {seconds} s")
    rng = np.random.default_rng(seed)
    times = sample_times(start_ns, n)
    t = (times - start_ns) / NS_PER_S

    # Frequency deviation: a smoothed random walk of a few mHz, plus a dip during the fault.
    walk = np.cumsum(rng.normal(0.0, 0.0004, n))
    freq_dev = walk - np.linspace(0.0, walk[-1], n) + 0.01 * np.sin(2 * np.pi * t / 47.0)
    fault = fault_for(start_ns, n)
    in_fault = (times >= fault.start_ns) & (times < fault.end_ns)
    after = np.clip((times - fault.end_ns) / NS_PER_S, 0.0, None)
    recovery = np.where(times >= fault.end_ns, np.exp(-after / 0.4), 0.0)
    freq_dev = freq_dev - 0.05 * in_fault - 0.05 * recovery
    system_angle = 360.0 * np.cumsum(freq_dev) / SAMPLE_RATE_HZ

    load = 1.0 + 0.08 * np.sin(2 * np.pi * t / 90.0) + 0.02 * np.sin(2 * np.pi * t / 13.0)
    out: dict[StreamSpec, tuple[np.ndarray, np.ndarray]] = {}
    for spec in STREAMS:
        phase_a = spec.phase == "A"
        offset = PHASE_OFFSET_DEG[spec.phase]
        if spec.quantity == "voltage" and spec.kind == "magnitude":
            imbalance = {"A": 1.000, "B": 0.996, "C": 1.003}[spec.phase]
            sag = np.where(in_fault, 0.62 if phase_a else 0.96, 1.0) - (0.05 if phase_a else 0.01) * recovery
            values = NOMINAL_VOLTS * imbalance * sag * (1.0 - 0.01 * (load - 1.0)) + rng.normal(0.0, 2.0, n)
        elif spec.quantity == "voltage":
            values = wrap_degrees(system_angle + offset + rng.normal(0.0, 0.02, n))
        elif spec.kind == "magnitude":
            surge = np.where(in_fault, 3.4 if phase_a else 1.1, 1.0) + (0.3 if phase_a else 0.0) * recovery
            share = {"A": 1.000, "B": 0.965, "C": 1.030}[spec.phase]  # an unbalanced feeder
            values = NOMINAL_AMPS * share * load * surge + rng.normal(0.0, 1.5, n)
        else:
            lag = POWER_FACTOR_DEG + (50.0 if phase_a else 0.0) * in_fault
            values = wrap_degrees(system_angle + offset - lag + rng.normal(0.0, 0.05, n))
        out[spec] = (times, np.asarray(values, dtype=np.float64))
    return out
