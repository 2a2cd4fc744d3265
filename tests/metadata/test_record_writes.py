"""Activity records written in one transaction end up as if written one call at a time."""

from __future__ import annotations

import uuid as uuidlib
from pathlib import Path

from pingthings.server.metadata import MetadataStore
from tests.metadata.conftest import FakeClock

COLUMNS = (
    "last_written",
    "previous_last_written",
    "estimated_count_delta",
    "long_term_autoregressive_average",
    "count_last_updated",
    "previous_count_last_updated",
)


def activity(store: MetadataStore, uid: bytes) -> tuple[object, ...]:
    (row,) = store.sql_query(
        f"select {', '.join(COLUMNS)} from streams where uuid = $1", [str(uuidlib.UUID(bytes=uid))]
    )
    return tuple(row[c] for c in COLUMNS)


def test_a_batch_equals_one_call_per_record(tmp_path: Path) -> None:
    one_by_one = MetadataStore(tmp_path / "one-by-one.sqlite", clock=FakeClock())
    batched = MetadataStore(tmp_path / "batched.sqlite", clock=FakeClock())
    uids = [uuidlib.uuid4().bytes for _ in range(3)]
    for store in (one_by_one, batched):
        for k, uid in enumerate(uids):
            store.create_stream(uid, "activity", {"name": f"s{k}"})
    base = 1_700_000_100 * 10**9
    writes = [(uids[k % 3], base + k * 10**9, 100 + k) for k in range(7)]
    writes.append((uuidlib.uuid4().bytes, base, 1))  # an unknown stream: ignored by both
    for write in writes:
        one_by_one.record_write(*write)
    batched.record_writes(writes)
    for uid in uids:
        assert activity(batched, uid) == activity(one_by_one, uid)
        assert activity(batched, uid)[0] is not None
    one_by_one.close()
    batched.close()


def test_many_records_of_one_stream_fold_into_the_same_columns(tmp_path: Path) -> None:
    """A stream written call after call sends many records per batch: folded into few UPDATEs,
    they leave every column, the moving average bit for bit, as one call per record does."""
    one_by_one = MetadataStore(tmp_path / "one-by-one.sqlite", clock=FakeClock())
    batched = MetadataStore(tmp_path / "batched.sqlite", clock=FakeClock())
    busy, quiet = uuidlib.uuid4().bytes, uuidlib.uuid4().bytes
    for store in (one_by_one, batched):
        store.create_stream(busy, "activity", {"name": "busy"})
        store.create_stream(quiet, "activity", {"name": "quiet"})
    base = 1_700_000_100 * 10**9
    for batch in range(3):  # the first starts from NULL averages, the others from stored ones
        size = (70, 33, 2)[batch]
        writes = [(busy, base + (batch * 100 + k) * 10**6, 100 + 7 * k % 23) for k in range(size)]
        writes.insert(5 % size, (quiet, base + batch * 10**9, 17 + batch))
        for write in writes:
            one_by_one.record_write(*write)
        batched.record_writes(writes)
        for uid in (busy, quiet):
            assert activity(batched, uid) == activity(one_by_one, uid), (batch, uid == busy)
    one_by_one.close()
    batched.close()
