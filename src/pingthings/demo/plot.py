"""The demo's PNG: min/mean/max envelopes of window statistics (needs the ``plot`` extra)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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


def write_envelope_plot(path: Path, panels: Sequence[tuple[str, Sequence[Envelope]]], title: str) -> None:
    """Draw one panel per ``(heading, envelopes)`` pair and save a PNG at ``path``.

    Each envelope is a shaded min–max band with its mean as a line; x is seconds from the first
    window.

    Raises
    ------
    ImportError
        If matplotlib is not installed (check :func:`plotting_available` first).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.4 * len(panels)), sharex=True, squeeze=False)
    origin = min(int(env.times_ns[0]) for _, envs in panels for env in envs if len(env.times_ns))
    for ax, (heading, envelopes) in zip(axes[:, 0], panels, strict=True):
        for env in envelopes:
            seconds = (env.times_ns - origin) / 1e9
            (line,) = ax.plot(seconds, env.mean, linewidth=1.0, label=env.label)
            ax.fill_between(seconds, env.minimum, env.maximum, color=line.get_color(), alpha=0.3, linewidth=0)
        units = sorted({env.unit for env in envelopes})
        ax.set_title(f"{heading} (line: mean, band: min–max per window)")
        ax.set_ylabel(", ".join(units))
        ax.grid(True, alpha=0.3)
        ax.margins(y=0.2)
        ax.legend(loc="upper right", fontsize="small", ncol=len(envelopes), framealpha=0.9)
    axes[-1, 0].set_xlabel("seconds since the first window")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
