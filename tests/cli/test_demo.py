"""``pingthings demo`` end to end on a small data set, checked against the generator's own values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pingthings.cli.main import cli
from pingthings.demo.plot import PLOT_HINT, plotting_available
from pingthings.demo.run import DEMO_START_NS, run_demo
from pingthings.demo.signals import generate
from pingthings.demo.substation import STREAMS

pytestmark = pytest.mark.timeout(180)

MINUTES = 0.25  # 15 s of 120 Hz data: 1 800 points per stream

SECTIONS = (
    "Ingest", "Statistics over the whole range", "Raw values", "side by side", "Versions", "SQL", "Plot",
)


def test_demo_command_runs_and_writes_its_outputs(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    plot = tmp_path / "envelopes.png"
    result = CliRunner().invoke(
        cli, ["demo", "--data", str(data), "--minutes", str(MINUTES), "--no-progress", "--plot", str(plot)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    for section in SECTIONS:
        assert section in result.stdout
    assert " ms" in result.stdout
    assert (data / "db").is_dir()
    if plotting_available():
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert PLOT_HINT in result.stdout and not plot.exists()


def test_demo_figures_match_the_generated_data(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_demo(data_dir=tmp_path, minutes=MINUTES, plot_path=tmp_path / "p.png", progress=False,
                      echo=lines.append)
    data = generate(DEMO_START_NS, MINUTES * 60)
    n = len(next(iter(data.values()))[0])
    assert result.points_ingested == n * len(STREAMS)
    for spec in STREAMS:
        values = data[spec][1]
        stats = result.summary[spec.label]
        assert stats["count"] == n
        assert stats["min"] == values.min() and stats["max"] == values.max()
        assert np.isclose(stats["mean"], values.mean(), rtol=1e-12)
    before, after = result.versions
    assert after > before
    assert result.sql_rows == 3  # the three current-magnitude streams are in amps
    assert result.stats_milliseconds > 0 and result.stats_windows > 0


def test_demo_without_matplotlib_explains_how_to_get_the_plot(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from pingthings.cli.main import main\n"
        f"main(['demo', '--data', {str(tmp_path)!r}, '--minutes', '0.1', '--no-progress'])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=150, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert PLOT_HINT in proc.stdout
    assert not (tmp_path / "pingthings-demo.png").exists()


def test_demo_refuses_a_directory_that_already_holds_a_database(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "engine.sqlite").write_bytes(b"")
    result = CliRunner().invoke(cli, ["demo", "--data", str(tmp_path), "--no-progress"])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "already holds a database" in result.stderr
