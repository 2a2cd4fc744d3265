"""The demo's envelope plot: visible bands, a legend in every panel, no series hidden by another."""

from __future__ import annotations

import numpy as np
import pytest

from pingthings.demo.plot import Envelope, Panel, envelope_figure, normal_range

pytest.importorskip("matplotlib")


def _envelope(label: str, level: float, spike_at: int | None = None) -> Envelope:
    n = 400
    mean = level + np.sin(np.arange(n) / 20.0)
    minimum, maximum = mean - 2.0, mean + 2.0
    if spike_at is not None:  # a fault: one window 40x further out than the usual spread
        minimum[spike_at] = level - 2_500.0
    times = np.arange(n, dtype=np.int64) * 268_435_456
    return Envelope(label, "V", times, minimum, mean, maximum)


def test_the_usual_range_ignores_a_rare_excursion() -> None:
    low, high = normal_range([_envelope("A", 7_200.0, spike_at=100), _envelope("B", 7_170.0)])
    assert 7_150.0 < low < 7_170.0 - 3.0
    assert 7_203.0 < high < 7_230.0


def test_every_panel_has_a_legend_and_bands_fill_the_overview() -> None:
    import matplotlib.pyplot as plt

    series = [_envelope("A", 7_200.0, spike_at=100), _envelope("B", 7_170.0), _envelope("C", 7_220.0)]
    overview = [Panel("voltage", series, 0)]
    detail = [Panel("zoom", series, 0), Panel("zoom 2", series[:2], 0)]
    fig = envelope_figure(overview, detail, "test")
    try:
        for ax, panel in zip(fig.axes, [*overview, *detail], strict=True):
            legend = ax.get_legend()
            assert legend is not None
            assert [t.get_text() for t in legend.get_texts()] == [e.label for e in panel.envelopes]
            means = ax.lines[::3]  # each envelope: its mean, then its min and max outlines
            assert len({line.get_linestyle() for line in means}) == len(panel.envelopes)
        bottom, top = fig.axes[0].get_ylim()
        # the band (4 V wide) takes a visible share of the overview's height despite the -2,500 V dip
        assert 4.0 / (top - bottom) > 0.03
        assert any("off scale" in text.get_text() for text in fig.axes[0].texts)
    finally:
        plt.close(fig)
