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
