"""The demo's PNG: min/mean/max envelopes of window statistics (needs the ``plot`` extra)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

#: What to tell the user when matplotlib is missing.
PLOT_HINT = "install the plot extra to get the envelope plot: pip install -e '.[plot]'  (or pingthings[plot])"


@dataclass(frozen=True)
class Envelope:
    """Window statistics of one stream, ready to draw."""

    label: str
    unit: str
    times_ns: npt.NDArray[np.int64]
    minimum: npt.NDArray[np.float64]
    mean: npt.NDArray[np.float64]
    maximum: npt.NDArray[np.float64]


def plotting_available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class Panel:
    """One set of axes: a heading, the envelopes drawn in it, and the time its x axis counts from."""

    heading: str
    envelopes: Sequence[Envelope]
    origin_ns: int


def _draw(ax: Any, panel: Panel) -> None:
    for env in panel.envelopes:
        seconds = (env.times_ns - panel.origin_ns) / 1e9
        (line,) = ax.plot(seconds, env.mean, linewidth=1.0, label=env.label)
        ax.fill_between(seconds, env.minimum, env.maximum, color=line.get_color(), alpha=0.3, linewidth=0)
    ax.set_title(panel.heading, fontsize="medium")
    ax.set_ylabel(", ".join(sorted({env.unit for env in panel.envelopes})))
    ax.grid(True, alpha=0.3)
    ax.margins(y=0.2)


def write_envelope_plot(path: Path, overview: Sequence[Panel], detail: Sequence[Panel], title: str) -> None:
    """Save a PNG: each ``overview`` panel full width, then the ``detail`` panels side by side.

    Each envelope is a shaded min–max band with its mean as a line; x is seconds from the panel's
    ``origin_ns``.

    Raises
    ------
    ImportError
        If matplotlib is not installed (check :func:`plotting_available` first).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    rows = len(overview) + (1 if detail else 0)
    fig = plt.figure(figsize=(12, 3.3 * rows))
    grid = fig.add_gridspec(rows, max(len(detail), 1))
    for row, panel in enumerate(overview):
        ax = fig.add_subplot(grid[row, :])
        _draw(ax, panel)
        ax.legend(loc="upper right", fontsize="small", ncol=len(panel.envelopes), framealpha=0.9)
        ax.set_xlabel("seconds since the start of the data", fontsize="small")
    for col, panel in enumerate(detail):
        ax = fig.add_subplot(grid[len(overview), col])
        _draw(ax, panel)
        ax.set_xlabel("seconds from the fault's start", fontsize="small")
    fig.suptitle(f"{title}\nline: mean of each window; band: its min to max")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
