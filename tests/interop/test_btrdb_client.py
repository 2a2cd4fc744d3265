"""The official BTrDB client (``btrdb`` 5.34, grpcio) against the embedded server.

Every expected result is computed here from the inserted arrays with numpy.
"""

from __future__ import annotations

import uuid as uuidlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml

from tests.conftest import AuthServer

btrdb = pytest.importorskip("btrdb")
from btrdb.utils import credentials as btrdb_credentials  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")

N_POINTS = 120_000  # three 50 000-point Insert batches from the client
STEP = 1_000_000  # 1 ms between points
T0 = 1_700_000_000_000_000_000


@pytest.fixture
def db(auth_server: AuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """A btrdb connection made from a profile in a credentials.yaml under a temporary HOME."""
    home = tmp_path / "home"
    config_dir = home / ".predictivegrid"
    config_dir.mkdir(parents=True)
    path = config_dir / "credentials.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "interop": {
                    "name": "interop",
                    "btrdb": {"endpoints": auth_server.endpoint, "api_key": auth_server.api_key},
                }
            }
        )
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("BTRDB_ENDPOINTS", raising=False)
    monkeypatch.delenv("BTRDB_API_KEY", raising=False)
    # btrdb resolves the credentials path at import time; point it at the temporary HOME.
    monkeypatch.setattr(btrdb_credentials, "CREDENTIALS_PATH", str(path))
    return btrdb.connect(profile="interop")


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    times = T0 + np.arange(N_POINTS, dtype=np.int64) * STEP + rng.integers(0, STEP // 2, N_POINTS)
    return times, rng.normal(100.0, 5.0, N_POINTS)


@pytest.fixture
def stream(db, unique_collection: str, data) -> object:  # type: ignore[no-untyped-def]
    times, values = data
    s = db.create(
        uuidlib.uuid4(),
        unique_collection,
        tags={"name": "volts", "unit": "V"},
        annotations={"site": "north", "kind": "pmu"},
    )
    s.insert(list(zip(times.tolist(), values.tolist(), strict=True)))
    return s


def stats(times: np.ndarray, values: np.ndarray, starts: np.ndarray, width: int) -> list[tuple]:
    out = []
    for s in starts.tolist():
        sel = values[(times >= s) & (times < s + width)]
        out.append(
            (s, len(sel), *(float(f(sel)) if len(sel) else 0.0 for f in (np.min, np.mean, np.max, np.std)))
        )
    return out


def test_info_and_connection(db) -> None:  # type: ignore[no-untyped-def]
    info = db.info()
    assert info["majorVersion"] == 5 and info["minorVersion"] >= 30
    assert db._ARROW_ENABLED


def test_values_and_arrow_values(stream, data) -> None:  # type: ignore[no-untyped-def]
    times, values = data
    start, end = int(times[1000]), int(times[100_000])
    sel = (times >= start) & (times < end)
    got = stream.values(start, end)
    np.testing.assert_array_equal([p.time for p, _ in got], times[sel])
    np.testing.assert_array_equal([p.value for p, _ in got], values[sel])
    table = stream.arrow_values(start, end)
    np.testing.assert_array_equal(table.column("time").cast(pa.int64()).to_numpy(), times[sel])
    np.testing.assert_array_equal(table.column("value").to_numpy(), values[sel])
    schema = pa.schema([pa.field("t", pa.int64()), pa.field("v", pa.float32())])
    cast = stream.arrow_values(start, end, schema=schema)
    assert cast.schema.equals(schema)
    np.testing.assert_array_equal(cast.column("t").to_numpy(), times[sel])
    np.testing.assert_array_equal(cast.column("v").to_numpy(), values[sel].astype(np.float32))


def test_aligned_windows_and_windows(stream, data) -> None:  # type: ignore[no-untyped-def]
    times, values = data
    pw = 30
    start, end = int(times[0]), int(times[-1]) + 1
    width = 1 << pw
    first = start & ~(width - 1)
    starts = np.arange(first, end & ~(width - 1), width, dtype=np.int64)
    want = [w for w in stats(times, values, starts, width) if w[1] > 0]
    got = stream.aligned_windows(start, end, pw)
    assert [(sp.time, sp.count) for sp, _ in got] == [(w[0], w[1]) for w in want]
    np.testing.assert_allclose([sp.mean for sp, _ in got], [w[3] for w in want], rtol=1e-9)
    np.testing.assert_allclose([sp.stddev for sp, _ in got], [w[5] for w in want], rtol=1e-6, atol=1e-9)
    arrow = stream.arrow_aligned_windows(start, end, pw)
    np.testing.assert_array_equal(arrow.column("count").to_numpy(), [w[1] for w in want])
    np.testing.assert_allclose(arrow.column("max").to_numpy(), [w[4] for w in want])

    wwidth = 7_000_000_000
    wend = start + wwidth * ((end - start) // wwidth)
    want = stats(times, values, np.arange(start, wend, wwidth, dtype=np.int64), wwidth)
    got = stream.windows(start, end, wwidth)
    assert [(sp.time, sp.count) for sp, _ in got] == [(w[0], w[1]) for w in want]
    np.testing.assert_allclose([sp.min for sp, _ in got], [w[2] for w in want])
    arrow = stream.arrow_windows(start, end, wwidth)
    np.testing.assert_allclose(arrow.column("mean").to_numpy(), [w[3] for w in want], rtol=1e-9)


def test_nearest_earliest_latest_count_delete(stream, data) -> None:  # type: ignore[no-untyped-def]
    times, values = data
    probe = int(times[500]) + 1
    forward, _ = stream.nearest(probe, 0)
    assert forward.time == times[times >= probe].min()
    assert forward.value == values[times == forward.time][0]
    backward, _ = stream.nearest(probe, 0, backward=True)
    assert backward.time == times[times < probe].max()
    assert stream.earliest()[0].time == times.min()
    assert stream.latest()[0].time == times.max()
    assert stream.count() == N_POINTS
    lo, hi = int(times[10]), int(times[20_010])
    version = stream.delete(lo, hi)
    remaining = N_POINTS - int(((times >= lo) & (times < hi)).sum())
    assert stream.count() == remaining
    assert stream.count(version=version - 1) == N_POINTS


def test_update_tags_annotations_and_stale_conflict(db, stream) -> None:  # type: ignore[no-untyped-def]
    stale = db.stream_from_uuid(stream.uuid)
    stale.refresh_metadata()
    stream.update(tags={"unit": "kV"}, annotations={"site": "south", "extra": "one"})
    fresh = db.stream_from_uuid(stream.uuid)
    fresh.refresh_metadata()
    assert fresh.tags()["unit"] == "kV"
    annotations, _ = fresh.annotations()
    assert annotations["site"] == "south" and annotations["extra"] == "one"
    with pytest.raises(btrdb.exceptions.BTrDBError) as info:
        stale.update(annotations={"site": "stale"})
    assert "423" in str(info.value) or getattr(info.value, "code", None) == 423
    fresh.refresh_metadata()
    assert fresh.annotations()[0]["site"] == "south"


def test_lookups_collections_and_sql(db, unique_collection: str) -> None:  # type: ignore[no-untyped-def]
    made = []
    for i, (unit, kind) in enumerate([("V", "pmu"), ("A", "pmu"), ("V", "relay")]):
        made.append(
            db.create(
                uuidlib.uuid4(),
                f"{unique_collection}/{i % 2}",
                tags={"name": f"s{i}", "unit": unit},
                annotations={"kind": kind},
            )
        )
    by_tag = db.streams_in_collection(unique_collection, tags={"unit": "V"})
    assert {s.uuid for s in by_tag} == {made[0].uuid, made[2].uuid}
    by_annotation = db.streams_in_collection(unique_collection, annotations={"kind": "pmu"})
    assert {s.uuid for s in by_annotation} == {made[0].uuid, made[1].uuid}
    exact = db.streams_in_collection(f"{unique_collection}/1", is_collection_prefix=False)
    assert {s.uuid for s in exact} == {made[1].uuid}
    assert sorted(db.list_collections(unique_collection)) == [
        f"{unique_collection}/0",
        f"{unique_collection}/1",
    ]
    rows = db.query("SELECT uuid, name FROM streams WHERE collection LIKE $1", [unique_collection + "%"])
    assert sorted(r["name"] for r in rows) == ["s0", "s1", "s2"]


def test_streamset_arrow_values_with_sampling_frequency(db, unique_collection: str) -> None:  # type: ignore[no-untyped-def]
    second = 1_000_000_000
    a = db.create(uuidlib.uuid4(), unique_collection, tags={"name": "a"})
    b = db.create(uuidlib.uuid4(), unique_collection, tags={"name": "b"})
    a_times = T0 + np.array([0, 400_000_000, 1_500_000_000, 2_600_000_000])
    b_times = T0 + np.array([100_000_000, 2_400_000_000])
    a.insert(list(zip(a_times.tolist(), [1.0, 2.0, 3.0, 4.0], strict=True)))
    b.insert(list(zip(b_times.tolist(), [10.0, 20.0], strict=True)))
    streams = db.streams(str(a.uuid), str(b.uuid))
    start, end = T0, T0 + 3 * second
    table = streams.filter(start=start, end=end, sampling_frequency=1).arrow_values()

    def snapped(times: np.ndarray, values: list[float]) -> dict[int, float]:
        # nearest multiple of the period, ties up; grid times in [start, end) only
        slots = (times + second // 2) // second * second
        return {int(t): v for t, v in zip(slots, values, strict=True) if start <= t < end}

    want_a = snapped(a_times, [1.0, 2.0, 3.0, 4.0])
    want_b = snapped(b_times, [10.0, 20.0])
    slots = sorted(set(want_a) | set(want_b))
    np.testing.assert_array_equal(table.column("time").cast(pa.int64()).to_numpy(), slots)
    col_a = table.column(str(a.uuid)).to_numpy()
    col_b = table.column(str(b.uuid)).to_numpy()
    for i, slot in enumerate(slots):
        # several points may share a slot (0 s and 0.4 s); which one wins is unspecified
        candidates_a = [
            v
            for t, v in zip(a_times.tolist(), [1.0, 2.0, 3.0, 4.0], strict=True)
            if (t + second // 2) // second * second == slot
        ]
        assert (col_a[i] in candidates_a) if slot in want_a else np.isnan(col_a[i])
        assert col_b[i] == want_b[slot] if slot in want_b else np.isnan(col_b[i])


def test_obliterate(db, unique_collection: str) -> None:  # type: ignore[no-untyped-def]
    s = db.create(uuidlib.uuid4(), unique_collection, tags={"name": "gone"})
    s.obliterate()
    assert db.streams_in_collection(unique_collection) == []
    assert not db.stream_from_uuid(s.uuid).exists()
    assert unique_collection not in db.list_collections(unique_collection)


def test_streams_by_collection_and_name(db, unique_collection: str) -> None:  # type: ignore[no-untyped-def]
    made = db.create(uuidlib.uuid4(), unique_collection, tags={"name": "by-name"})
    db.create(uuidlib.uuid4(), unique_collection, tags={"name": "other"})
    found = db.streams(f"{unique_collection}/by-name")
    assert [s.uuid for s in found] == [made.uuid]
    made.flush()  # raises on a non-OK stat
    assert made.version() == 10
