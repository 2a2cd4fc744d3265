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


#: Line styles by series position, so series that meet stay distinguishable without colour.
_STYLES = ("-", "--", ":", "-.")


def normal_range(envelopes: Sequence[Envelope], pad: float = 0.35) -> tuple[float, float] | None:
    """Y limits that fit the series' usual values, so a rare excursion does not flatten them.

    The limits span the 1st to 99th percentile of every window's min and max, widened by ``pad``
    times that span on each side. None when there is nothing to draw.
    """
    lows = [env.minimum for env in envelopes if env.minimum.size]
    highs = [env.maximum for env in envelopes if env.maximum.size]
    if not lows:
        return None
    low = float(np.percentile(np.concatenate(lows), 1))
    high = float(np.percentile(np.concatenate(highs), 99))
    span = max(high - low, 1e-9 * max(abs(low), abs(high), 1.0))
    return low - pad * span, high + pad * span


def _draw(ax: Any, panel: Panel, clip_excursions: bool) -> None:
    """Each envelope as a shaded, outlined min–max band with its mean on top, plus a legend.

    With ``clip_excursions`` the y axis fits the usual values and every excursion beyond it is
    labelled with its extreme, instead of squeezing the bands flat.
    """
    handles: list[Any] = []
    for index, env in enumerate(panel.envelopes):
        seconds = (env.times_ns - panel.origin_ns) / 1e9
        (line,) = ax.plot(seconds, env.mean, linewidth=1.4, linestyle=_STYLES[index % len(_STYLES)],
                          zorder=3 + index)
        colour = line.get_color()
        band = ax.fill_between(seconds, env.minimum, env.maximum, color=colour, alpha=0.25, linewidth=0,
                               zorder=1)
        for edge in (env.minimum, env.maximum):
            ax.plot(seconds, edge, color=colour, linewidth=0.6, alpha=0.9, zorder=2)
        handles.append((band, line))
    limits = normal_range(panel.envelopes) if clip_excursions else None
    if limits is not None:
        ax.set_ylim(*limits)
        note = _excursions(panel, limits)
        if note:
            ax.text(0.01, 0.03, note, transform=ax.transAxes, fontsize="x-small", va="bottom",
                    bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.85, "linewidth": 0.5})
    else:
        ax.margins(y=0.2)
    ax.set_title(panel.heading, fontsize="medium")
    ax.set_ylabel(", ".join(sorted({env.unit for env in panel.envelopes})))
    ax.grid(True, alpha=0.3)
    ax.legend(handles, [env.label for env in panel.envelopes], loc="best", fontsize="x-small",
              ncol=len(panel.envelopes), framealpha=0.9)


def _excursions(panel: Panel, limits: tuple[float, float]) -> str:
    """One line per series that leaves ``limits``: where, and how far (empty when none does)."""
    low, high = limits
    lines = []
    for env in panel.envelopes:
        seconds = (env.times_ns - panel.origin_ns) / 1e9
        if (env.minimum < low).any():
            i = int(np.argmin(env.minimum))
            lines.append(f"{env.label} falls to {env.minimum[i]:,.0f} {env.unit} at {seconds[i]:.0f} s")
        if (env.maximum > high).any():
            i = int(np.argmax(env.maximum))
            lines.append(f"{env.label} rises to {env.maximum[i]:,.0f} {env.unit} at {seconds[i]:.0f} s")
    return "off scale (see the panels below): " + "; ".join(lines) if lines else ""


def envelope_figure(overview: Sequence[Panel], detail: Sequence[Panel], title: str) -> Any:
    """A matplotlib Figure: each ``overview`` panel full width, then the ``detail`` panels side by side.

    Each envelope is a shaded, outlined min–max band with its mean as a line; x is seconds from
    the panel's ``origin_ns``. Overview panels fit their y axis to the usual values and note the
    excursions that go beyond it (the detail panels show those in full). Every panel has a
    legend, and the series of a panel differ in line style as well as colour.

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
        _draw(ax, panel, clip_excursions=True)
        ax.set_xlabel("seconds since the start of the data", fontsize="small")
    for col, panel in enumerate(detail):
        ax = fig.add_subplot(grid[len(overview), col])
        _draw(ax, panel, clip_excursions=False)
        ax.set_xlabel("seconds from the fault's start", fontsize="small")
    fig.suptitle(f"{title}\nline: mean of each window; shaded band: its min to max")
    fig.tight_layout()
    return fig


def write_envelope_plot(path: Path, overview: Sequence[Panel], detail: Sequence[Panel], title: str) -> None:
    """Save :func:`envelope_figure` as a PNG at ``path``.

    Raises
    ------
    ImportError
        If matplotlib is not installed (check :func:`plotting_available` first).
    """
    import matplotlib.pyplot as plt

    fig = envelope_figure(overview, detail, title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
