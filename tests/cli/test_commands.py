"""``info``, ``ls``, ``query`` and ``sql`` against the real embedded server, checked against the
points the fixture inserted through the client."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pa_parquet
import pytest

from .support import BASE_NS, Populated

pytestmark = pytest.mark.timeout(120)


def _times_ns(table: pa.Table) -> np.ndarray:
    column = table.column("time")
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    return np.asarray(column.to_numpy(), dtype=np.int64)


def _window_oracle(
    times: np.ndarray, values: np.ndarray, starts: np.ndarray, width: int
) -> dict[str, np.ndarray]:
    """min/mean/max/count of the points in each window [s, s + width), computed with numpy."""
    out: dict[str, list[float]] = {"min": [], "mean": [], "max": [], "count": []}
    for s in starts:
        inside = values[(times >= s) & (times < s + width)]
        out["count"].append(float(inside.size))
        out["min"].append(float(inside.min()))
        out["mean"].append(float(inside.mean()))
        out["max"].append(float(inside.max()))
    return {k: np.array(v) for k, v in out.items()}


def test_info_reports_the_servers_version(populated: Populated) -> None:
    import pingthings.timeseries as pt

    with pt.connect(endpoint=populated.endpoint) as conn:
        expected = conn.info()
    result = populated.run("info", "--json")
    assert result.exit_code == 0, result.output
    details = json.loads(result.stdout)
    assert (details["major_version"], details["minor_version"]) == (
        expected["major_version"], expected["minor_version"])
    text = populated.run("info").stdout
    assert populated.endpoint in text and f"{expected['major_version']}.{expected['minor_version']}" in text


def test_ls_lists_the_collection_and_its_streams(populated: Populated) -> None:
    prefix = populated.collection.split("/")[0]
    collections = json.loads(populated.run("ls", prefix, "--json").stdout)
    assert populated.collection in collections
    assert all(c.startswith(prefix) for c in collections)

    streams = json.loads(populated.run("ls", "-l", populated.collection, "--json").stdout)
    assert {(s["name"], s["uuid"]) for s in streams} == {
        (name, str(s.uuid)) for name, s in populated.streams.items()}
    table = populated.run("ls", "-l", populated.collection).stdout
    for s in populated.streams.values():
        assert str(s.uuid) in table


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_query_raw_values_round_trip_exactly(populated: Populated, tmp_path: Path, suffix: str) -> None:
    stream = populated.streams["V1"]
    start, end = int(stream.times[100]), int(stream.times[2_100])
    out = tmp_path / f"raw.{suffix}"
    result = populated.run("query", f"{populated.collection}/V1", "--start", str(start), "--end", str(end),
                           "-o", str(out))
    assert result.exit_code == 0, result.output
    table = pa_csv.read_csv(out) if suffix == "csv" else pa_parquet.read_table(out)
    assert table.column_names == ["time", "value"]
    np.testing.assert_array_equal(_times_ns(table), stream.times[100:2_100])
    np.testing.assert_array_equal(table.column("value").to_numpy(), stream.values[100:2_100])


def test_query_by_uuid_to_stdout_with_iso_start(populated: Populated) -> None:
    stream = populated.streams["I1"]
    end = int(stream.times[9])
    result = populated.run("query", str(stream.uuid), "--start", "2023-11-14T22:13:20Z", "--end", str(end),
                           "--time-ns")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0] == '"time","value"'
    got = [(int(t), float(v)) for t, v in (line.split(",") for line in lines[1:])]
    assert got == [(int(t), float(v)) for t, v in zip(stream.times[:9], stream.values[:9], strict=True)]


def test_query_aligned_windows_match_a_numpy_oracle(populated: Populated, tmp_path: Path) -> None:
    stream = populated.streams["V1"]
    pw = 30
    out = tmp_path / "pw.parquet"
    result = populated.run("query", f"{populated.collection}/V1", "--pw", str(pw), "-o", str(out))
    assert result.exit_code == 0, result.output
    table = pa_parquet.read_table(out)
    starts = np.unique((stream.times >> pw) << pw)
    np.testing.assert_array_equal(_times_ns(table), starts)
    oracle = _window_oracle(stream.times, stream.values, starts, 1 << pw)
    np.testing.assert_array_equal(table.column("count").to_numpy(), oracle["count"])
    np.testing.assert_array_equal(table.column("min").to_numpy(), oracle["min"])
    np.testing.assert_array_equal(table.column("max").to_numpy(), oracle["max"])
    np.testing.assert_allclose(table.column("mean").to_numpy(), oracle["mean"], rtol=1e-12)


def test_query_precise_windows_match_a_numpy_oracle(populated: Populated, tmp_path: Path) -> None:
    stream = populated.streams["I1"]
    width = 1_000_000_000
    start = BASE_NS
    end = BASE_NS + 20 * width
    out = tmp_path / "w.csv"
    result = populated.run("query", str(stream.uuid), "--start", str(start), "--end", str(end),
                           "--window", "1s", "--time-ns", "-o", str(out))
    assert result.exit_code == 0, result.output
    table = pa_csv.read_csv(out)
    counts = table.column("count").to_numpy()
    starts = _times_ns(table)[counts > 0]
    oracle = _window_oracle(stream.times, stream.values, starts, width)
    np.testing.assert_array_equal(counts[counts > 0], oracle["count"])
    np.testing.assert_array_equal(table.column("min").to_numpy()[counts > 0], oracle["min"])
    np.testing.assert_allclose(table.column("mean").to_numpy()[counts > 0], oracle["mean"], rtol=1e-12)
    in_range = stream.times[(stream.times >= start) & (stream.times < end)]
    assert counts.sum() == in_range.size


def test_query_several_streams_gives_a_long_table(populated: Populated, tmp_path: Path) -> None:
    out = tmp_path / "both.parquet"
    names = [f"{populated.collection}/{name}" for name in populated.streams]
    result = populated.run("query", *names, "-o", str(out))
    assert result.exit_code == 0, result.output
    table = pa_parquet.read_table(out)
    assert table.column_names == ["uuid", "time", "value"]
    uuids = np.array(table.column("uuid").to_pylist())
    for stream in populated.streams.values():
        mine = uuids == str(stream.uuid)
        np.testing.assert_array_equal(_times_ns(table)[mine], stream.times)
        np.testing.assert_array_equal(table.column("value").to_numpy()[mine], stream.values)


def test_sql_with_a_bound_parameter(populated: Populated) -> None:
    statement = "SELECT name, unit FROM streams WHERE collection = $1 ORDER BY name"
    rows = json.loads(populated.run("sql", statement, populated.collection, "--json").stdout)
    assert rows == [{"name": "I1", "unit": "amps"}, {"name": "V1", "unit": "volts"}]
    text = populated.run("sql", statement, populated.collection).stdout
    assert "volts" in text and "amps" in text


@pytest.mark.parametrize("extra", [[], ["--pw", "20"]])
def test_query_of_an_empty_range_writes_just_the_header(populated: Populated, tmp_path: Path,
                                                       extra: list[str]) -> None:
    stream = populated.streams["V1"]
    out = tmp_path / "empty.csv"
    result = populated.run("query", str(stream.uuid), "--start", "2001-01-01", "--end", "2001-01-02",
                           *extra, "-o", str(out))
    assert result.exit_code == 0, result.output
    table = pa_csv.read_csv(out)
    assert table.num_rows == 0
    assert table.column_names[0] == "time"
    assert "wrote 0 rows" in result.stderr


def test_query_an_older_version(populated: Populated, tmp_path: Path) -> None:
    import uuid

    import pingthings.timeseries as pt

    times = BASE_NS + np.arange(100, dtype=np.int64) * 1_000_000
    values = np.arange(100, dtype=np.float64)
    with pt.connect(endpoint=populated.endpoint) as conn:
        stream = conn.create(uuid.uuid4(), populated.collection + "/versions", tags={"name": "v"})
        old = stream.insert((times, values))
        stream.delete(int(times[50]), int(times[-1]) + 1)
    for version, expected in ((old, values), (0, values[:50])):
        out = tmp_path / f"v{version}.parquet"
        result = populated.run("query", str(stream.uuid), "--version", str(version), "-o", str(out))
        assert result.exit_code == 0, result.output
        np.testing.assert_array_equal(pa_parquet.read_table(out).column("value").to_numpy(), expected)
