"""Run the demo: embedded server, synthetic substation, then a guided look at what the platform does.

Everything after the server starts goes through the public client API
(``pingthings.timeseries.connect`` to the server's endpoint), exactly as user code would.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import click
import numpy as np

from pingthings.cli.errors import EXIT_USAGE, UserError
from pingthings.demo import report
from pingthings.demo.plot import PLOT_HINT, Envelope, Panel, plotting_available, write_envelope_plot
from pingthings.demo.signals import fault_for, generate
from pingthings.demo.substation import COLLECTION_ROOT, DEVICES, SAMPLE_RATE_HZ, STREAMS, UNITS, StreamSpec

if TYPE_CHECKING:
    from pingthings.timeseries import Client, Stream

Echo = Callable[[str], None]
Data = dict[StreamSpec, tuple[np.ndarray, np.ndarray]]

#: First sample of the demo data: 2024-06-01T12:00:00Z.
DEMO_START_NS = 1_717_243_200_000_000_000
#: Samples sent per stream per insert call while ingesting (20 s of 120 Hz data).
INGEST_CHUNK = 20 * SAMPLE_RATE_HZ
#: Point width of the statistics windows: 2**30 ns ≈ 1.07 s.
STATS_POINT_WIDTH = 30
#: Point width of the plot's windows: 2**28 ns ≈ 268 ms, fine enough to show the fault.
PLOT_POINT_WIDTH = 28
#: Point width of the close-up around the fault: 2**24 ns ≈ 16.8 ms, about two samples per window.
ZOOM_POINT_WIDTH = 24
#: Time shown either side of the fault in the close-up.
ZOOM_NS = 1_000_000_000
#: Rows shown by the raw and aligned tables.
PREVIEW_ROWS = 8


@dataclass
class DemoResult:
    """What a demo run produced, for callers and tests."""

    data_dir: Path
    endpoint: str
    points_ingested: int
    ingest_seconds: float
    stats_milliseconds: float
    stats_windows: int
    versions: tuple[int, int]
    sql_rows: int
    plot_path: Path | None
    summary: dict[str, dict[str, float]] = field(default_factory=dict)


@contextmanager
def _data_directory(given: Path | None) -> Iterator[tuple[Path, bool]]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given, True
        return
    with tempfile.TemporaryDirectory(prefix="pingthings-demo-") as tmp:
        yield Path(tmp), False


def run_demo(
    data_dir: Path | None = None,
    minutes: float = 3.0,
    plot_path: Path | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = click.echo,
) -> DemoResult:
    """Start an embedded server, load the demo substation and print a tour of the results.

    Parameters
    ----------
    data_dir
        Directory for the database; kept afterwards. ``None`` uses a temporary directory that is
        removed at the end.
    minutes
        Minutes of 120 Hz data per stream.
    plot_path
        Where to write the envelope PNG; default ``pingthings-demo.png`` in ``data_dir`` (or the
        current directory when ``data_dir`` is temporary).
    progress
        Show a tqdm progress bar while ingesting.
    echo
        Where the text goes (``click.echo`` by default).
    """
    from pingthings.server import Server

    began = time.perf_counter()
    with _data_directory(data_dir) as (root, kept):
        database = root / "db"
        if database.exists() and any(database.iterdir()):
            raise UserError(f"{database} already holds a database; give --data a new or empty directory",
                            EXIT_USAGE)
        if plot_path is None:
            plot_path = (root if kept else Path.cwd()) / "pingthings-demo.png"
        with Server(database, listen="127.0.0.1:0") as server:
            result = _tour(server.endpoint, root, kept, minutes, plot_path, progress, echo)
    echo(report.heading(f"Done in {time.perf_counter() - began:.1f} s"))
    if kept:
        echo(f"The database stays in {root}; serve it again with:  pingthings serve --data {root / 'db'}")
    return result


def _tour(endpoint: str, root: Path, kept: bool, minutes: float, plot_path: Path, progress: bool,
          echo: Callable[[str], None]) -> DemoResult:
    import pingthings.timeseries as pt

    conn = pt.connect(endpoint=endpoint)
    try:
        info = conn.info()
        echo(report.heading("pingthings demo"))
        echo(f"Embedded server on {endpoint} (BTrDB v{info['major_version']}.{info['minor_version']}), "
             f"data in {root if kept else 'a temporary directory'}")
        echo(f"Every step below is an ordinary client call:  pt.connect(endpoint={endpoint!r})")

        streams = _create_substation(conn, echo)
        seconds = minutes * 60.0
        data = generate(DEMO_START_NS, seconds)
        end_ns = DEMO_START_NS + round(seconds * 1e9)
        points, ingest_s = _ingest(conn, streams, data, progress, echo)
        summary, stats_ms, n_windows = _statistics(conn, streams, end_ns, echo)
        _raw_preview(streams, data, echo)
        _aligned_table(conn, streams, data, echo)
        versions = _versions(streams, data, echo)
        sql_rows = _sql(conn, echo)
        written = _plot(conn, streams, data, end_ns, plot_path, echo)
    finally:
        conn.close()
    return DemoResult(root, endpoint, points, ingest_s, stats_ms, n_windows, versions, sql_rows, written,
                      summary)


def _create_substation(conn: Client, echo: Echo) -> dict[StreamSpec, Stream]:
    echo(report.heading("1. A substation: 2 PMUs, 12 phasor streams at 120 Hz"))
    device_ids = _register_devices_and_units(conn, echo)
    streams = {
        spec: conn.create(spec.uuid, spec.device.collection,
                          tags=spec.stream_tags(device_ids[spec.device.name]),
                          annotations=spec.stream_annotations())
        for spec in STREAMS
    }
    echo(report.format_streams(STREAMS))
    return streams


def _register_devices_and_units(conn: Client, echo: Echo) -> dict[str, int]:
    """Create the demo's units (unless the server already has them) and devices; device name → id."""
    known_units = {unit["name"] for unit in conn.list_units()}
    for unit in UNITS:
        if unit.name not in known_units:
            conn.create_unit(name=unit.name, symbol=unit.symbol, base=1.0, canonical=unit.name,
                             source_name=list(unit.source_name))
    device_ids: dict[str, int] = {}
    for device in DEVICES:
        created = conn.create_device({"name": device.name, "description": device.description,
                                      "vendor": device.vendor, "model_name": device.model_name})
        device_ids[device.name] = int(created["id"])
    echo(f"units: {', '.join(u.name for u in UNITS)}; devices: "
         + ", ".join(f"{name} (id {ident})" for name, ident in device_ids.items()))
    return device_ids


def _ingest(conn: Client, streams: dict[StreamSpec, Stream], data: Data, progress: bool,
            echo: Echo) -> tuple[int, float]:
    from tqdm.auto import tqdm  # a widget in notebooks, a text bar in terminals

    total = sum(len(times) for times, _ in data.values())
    echo(report.heading(f"2. Ingest {total:,} points"))
    streamset = conn.streamset_from_uuids([stream.uuid for stream in streams.values()])
    n = len(next(iter(data.values()))[0])
    echo(f"streamset.insert({{uuid: (times, values), ...}}): {INGEST_CHUNK:,} points per stream per call, "
         f"the {len(streams)} streams concurrently")
    began = time.perf_counter()
    # disable=None: tqdm stays silent when stderr is not a terminal (no '\r' fragments in logs)
    with tqdm(total=total, unit="pt", unit_scale=True, disable=None if progress else True, leave=True,
              desc="inserting") as bar:
        for lo in range(0, n, INGEST_CHUNK):
            hi = min(lo + INGEST_CHUNK, n)
            batch: dict[UUID | str, Any] = {streams[spec].uuid: (times[lo:hi], values[lo:hi])
                                            for spec, (times, values) in data.items()}
            streamset.insert(batch)
            bar.update((hi - lo) * len(batch))
    elapsed = time.perf_counter() - began
    echo(f"ingested {total:,} points in {elapsed:.2f} s ({total / elapsed:,.0f} points/s)")
    return total, elapsed


def _round_up(time_ns: int, point_width: int) -> int:
    """The next multiple of ``2**point_width`` at or after ``time_ns``.

    Aligned-window queries round ``end`` down to a window boundary, so a range ending inside a
    window must be extended to keep that last window.
    """
    width = 1 << point_width
    return -(-time_ns // width) * width


def _statistics(conn: Client, streams: dict[StreamSpec, Stream], end_ns: int,
                echo: Echo) -> tuple[dict[str, dict[str, float]], float, int]:
    echo(report.heading("3. Statistics over the whole range, from the tree's summaries"))
    streamset = conn.streamset_from_uuids([stream.uuid for stream in streams.values()])
    timings = []
    for _ in range(3):  # later runs find the server's pages cached; report the best and the first
        began = time.perf_counter()
        tables = streamset.aligned_windows(DEMO_START_NS, _round_up(end_ns, STATS_POINT_WIDTH),
                                           STATS_POINT_WIDTH, single_stream_schema=None)
        timings.append((time.perf_counter() - began) * 1e3)
    elapsed_ms = min(timings)
    by_uuid = dict(zip((s.uuid for s in streamset), tables, strict=True))
    n_windows = sum(t.num_rows for t in tables if t is not None)
    summary: dict[str, dict[str, float]] = {}
    for spec, stream in streams.items():
        summary[spec.label] = report.combine_windows(by_uuid[stream.uuid])
    points = sum(int(s["count"]) for s in summary.values())
    echo(f"aligned_windows(point_width={STATS_POINT_WIDTH}) over {len(streams)} streams: "
         f"{n_windows:,} windows of {report.duration(2**STATS_POINT_WIDTH)} summarising {points:,} points "
         f"in {elapsed_ms:.1f} ms (best of {len(timings)}; the first took {timings[0]:.1f} ms)")
    echo(report.format_summary(STREAMS, summary))
    return summary, elapsed_ms, n_windows


def _spec(name: str) -> StreamSpec:
    return next(spec for spec in STREAMS if spec.name == name)


def _fault_window(data: Data) -> tuple[int, int]:
    times = next(iter(data.values()))[0]
    fault = fault_for(int(times[0]), len(times))
    step = 1_000_000_000 // SAMPLE_RATE_HZ
    return fault.start_ns - 3 * step, fault.start_ns + (PREVIEW_ROWS - 3) * step + step // 2


def _raw_preview(streams: dict[StreamSpec, Stream], data: Data, echo: Echo) -> None:
    spec = _spec("VPHM_A")
    start, end = _fault_window(data)
    echo(report.heading(f"4. Raw values of {spec.label} as the fault starts"))
    table = streams[spec].raw_values(start, end)
    echo(f"raw_values(start, end) -> pyarrow.Table with {table.num_rows} rows; "
         "table.to_pandas() for a DataFrame")
    echo(report.format_raw(table, spec.unit.symbol))


def _aligned_table(conn: Client, streams: dict[StreamSpec, Stream], data: Data, echo: Echo) -> None:
    names = ("VPHM_A", "VPHM_B", "VPHM_C", "IPHM_A")
    specs = [_spec(name) for name in names]
    start, end = _fault_window(data)
    echo(report.heading("5. Several streams side by side, joined on time"))
    streamset = conn.streamset_from_uuids([streams[spec].uuid for spec in specs])
    table = streamset.raw_values_aligned(start, end)
    labels = {str(streams[spec].uuid): f"{spec.name} ({spec.unit.symbol})" for spec in specs}
    echo("streamset.raw_values_aligned(start, end) -> one pyarrow.Table, a column per stream")
    echo(report.format_joined(table, labels))


def _versions(streams: dict[StreamSpec, Stream], data: Data, echo: Echo) -> tuple[int, int]:
    spec = _spec("VPHA_A")
    stream = streams[spec]
    times = data[spec][0]
    fault = fault_for(int(times[0]), len(times))
    echo(report.heading("6. Versions: every change makes a new version; old ones stay readable"))
    echo(f"Say the fault upset {spec.label}'s angle estimate and we delete those 150 ms:")
    before = stream.get_latest_version()
    after = stream.delete(fault.start_ns, fault.end_ns)
    rows = []
    for version in (before, after):
        count = stream.count(fault.start_ns, fault.end_ns, version=version, precise=True)
        total = stream.count(version=version, precise=True)
        rows.append((version, total, count))
    echo(f"stream.delete(fault start, fault end): version {before} -> {after}; "
         "stream.count(..., version=v, precise=True):")
    echo(report.format_table(["version", "points in stream", "points in the 150 ms fault"], rows))
    changed = stream.changes(before, after)
    echo(f"stream.changes({before}, {after}) -> {len(changed)} changed range(s), "
         f"covering {report.duration(sum(r['end'] - r['start'] for r in changed))} of tree-aligned time")
    return before, after


#: The demo's SQL query: the metadata sandbox accepts SELECT on the ``streams`` table.
DEMO_SQL = "SELECT collection, name, unit FROM streams WHERE collection LIKE $1 AND unit = $2 ORDER BY name"


def _sql(conn: Client, echo: Echo) -> int:
    echo(report.heading("7. SQL on the stream metadata"))
    params = [f"{COLLECTION_ROOT}/%", "amps"]
    rows = conn.sql_query(DEMO_SQL, params)
    echo(f"conn.sql_query({DEMO_SQL!r}, {params!r})")
    echo(report.format_records(rows))
    return len(rows)


def _envelopes(conn: Client, streams: dict[StreamSpec, Stream], specs: list[StreamSpec], start: int,
               end: int, point_width: int) -> list[Envelope]:
    streamset = conn.streamset_from_uuids([streams[s].uuid for s in specs])
    tables = streamset.aligned_windows(start, _round_up(end, point_width), point_width,
                                       single_stream_schema=None)
    return [report.envelope(spec.label, spec.unit.symbol, table)
            for spec, table in zip(specs, tables, strict=True) if table is not None and table.num_rows]


def _plot(conn: Client, streams: dict[StreamSpec, Stream], data: Data, end_ns: int, path: Path,
          echo: Echo) -> Path | None:
    echo(report.heading("8. Plot: min/mean/max envelopes"))
    if not plotting_available():
        echo(PLOT_HINT)
        return None
    times = next(iter(data.values()))[0]
    fault = fault_for(int(times[0]), len(times))
    overview: list[Panel] = []
    detail: list[Panel] = []
    for quantity in ("voltage", "current"):
        specs = [s for s in STREAMS if s.quantity == quantity and s.kind == "magnitude"]
        envelopes = _envelopes(conn, streams, specs, DEMO_START_NS, end_ns, PLOT_POINT_WIDTH)
        overview.append(Panel(f"{quantity} magnitude, windows of {report.duration(2**PLOT_POINT_WIDTH)}",
                              envelopes, DEMO_START_NS))
        zoom = _envelopes(conn, streams, specs, fault.start_ns - ZOOM_NS, fault.end_ns + ZOOM_NS,
                          ZOOM_POINT_WIDTH)
        detail.append(Panel(f"around the fault, windows of {report.duration(2**ZOOM_POINT_WIDTH)}",
                            zoom, fault.start_ns))
    write_envelope_plot(path, overview, detail, "pingthings demo: substation A, phase magnitudes")
    echo(f"wrote {path} (one StreamSet.aligned_windows call per panel)")
    return path


__all__ = ["DemoResult", "Envelope", "run_demo"]
