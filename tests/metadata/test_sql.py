"""The SQL sandbox: PostgreSQL-style queries work, anything else is refused with BadSQL."""

from __future__ import annotations

import uuid as uuidlib
from datetime import datetime

import pytest

from pingthings.server.errors import BadSQL
from pingthings.server.metadata import MetadataStore
from pingthings.server.metadata import sql as sql_module
from pingthings.server.metadata.schema import STREAMS_VIEW_COLUMNS
from pingthings.server.metadata.sql_rewrite import rewrite
from pingthings.wire.status import StatusCode

from .conftest import FakeClock

STREAMS = [
    (
        "sunshine/PMU1",
        {"name": "L1MAG", "unit": "volts", "ingress": "pmu"},
        {"poc": "alice", "impedance": "3"},
    ),
    ("sunshine/PMU1", {"name": "L1ANG", "unit": "degrees", "distiller": "d1"}, {"poc": "bob"}),
    ("sunshine/PMU2", {"name": "L1MAG", "unit": "volts"}, {"region": "west"}),
    ("Sunshine/other", {"name": "freq", "unit": "hertz"}, {}),
]


@pytest.fixture
def filled(store: MetadataStore) -> dict[str, bytes]:
    uuids = {}
    for collection, tags, notes in STREAMS:
        uid = uuidlib.uuid4().bytes
        store.create_stream(uid, collection, tags, notes)
        uuids[f"{collection}/{tags['name']}"] = uid
    return uuids


def test_select_star_returns_every_documented_column(store: MetadataStore, filled: dict[str, bytes]) -> None:
    rows = store.sql_query("select * from streams where name = $1 order by collection", ["L1MAG"])
    assert [tuple(row) for row in rows] == [STREAMS_VIEW_COLUMNS] * 2
    first = rows[0]
    assert first["uuid"] == str(uuidlib.UUID(bytes=filled["sunshine/PMU1/L1MAG"]))
    assert (first["collection"], first["name"], first["unit"], first["ingress"]) == (
        "sunshine/PMU1",
        "L1MAG",
        "volts",
        "pmu",
    )
    assert first["annotations"] == {"poc": "alice", "impedance": "3"}
    assert first["property_version"] == 1
    assert first["watched"] is False and first["geo"] is None
    created = datetime.fromisoformat(first["created_at"])
    assert created.timestamp() == pytest.approx(FakeClock().now_ns / 1e9)
    assert first["last_written"] is None


def test_official_client_helper_queries(store: MetadataStore, filled: dict[str, bytes]) -> None:
    names = store.sql_query(
        "select distinct(name) as name from streams where collection like $1", ["sunshine%"]
    )
    assert sorted(row["name"] for row in names) == ["L1ANG", "L1MAG"]  # LIKE is case-sensitive
    units = store.sql_query("select distinct(unit) as unit from streams")
    assert sorted(row["unit"] for row in units) == ["degrees", "hertz", "volts"]
    keys = store.sql_query(
        "select distinct(skeys(annotations)) as annotations from streams where collection like $1",
        ["sunshine/PMU1%"],
    )
    assert sorted(row["annotations"] for row in keys) == ["impedance", "poc"]
    count = store.sql_query("SELECT COUNT(uuid) FROM streams WHERE collection=$1::text", ["sunshine/PMU1"])
    assert count == [{"count": 2}]
    with_poc = store.sql_query(
        "SELECT COUNT(uuid) FROM streams WHERE annotations->$1::text IS NOT NULL", ["poc"]
    )
    assert with_poc == [{"count": 2}]
    text = store.sql_query("select name from streams where annotations ->> 'poc' = $1", ["bob"])
    assert text == [{"name": "L1ANG"}]
    exists = store.sql_query("select count(*) from streams where exist(annotations, $1)", ["region"])
    assert exists == [{"count": 1}]


def test_parameters_are_bound_not_interpolated(store: MetadataStore, filled: dict[str, bytes]) -> None:
    hostile = "x' OR '1'='1"
    assert store.sql_query("select name from streams where name = $1", [hostile]) == []
    # a $1 inside a string literal is text, not a placeholder
    assert store.sql_query("select '$1' as literal, $1 as bound from streams limit 1", ["v"]) == [
        {"literal": "$1", "bound": "v"}
    ]
    assert store.sql_query("select name from streams where name = '$1'") == []
    assert store.sql_query(
        "select name from streams where property_version = $1 and name = $2", ["1", "freq"]
    ) == [{"name": "freq"}]


@pytest.mark.parametrize(
    "query",
    [
        "delete from streams",
        "update streams set name = 'x'",
        "insert into streams (name) values ('x')",
        "drop view streams",
        "create table t (x)",
        "pragma table_info(streams)",
        "attach database ':memory:' as other",
        "select 1; drop table units",
        "select * from streams; select 1",
        "select * from stream_meta",
        'select * from "stream_meta"',
        "select * from [units]",
        "select * from main.devices",
        "select * from sqlite_master",
        "select * from sqlite_schema",
        "select * from pragma_table_info('streams')",
        "with streams as (select tags from stream_meta) select * from streams",
        "select load_extension('libevil')",
        "select randomblob(10)",
        "select zeroblob(1000000000)",
        "explain select * from streams",
        "select * from streams where name = 'unterminated",
        "",
        "   ;  ",
        "select nonsense from streams",
        "vacuum",
        "select * from obliterated_streams",
        "select * from collection_retention",
    ],
)
def test_refused_queries(store: MetadataStore, filled: dict[str, bytes], query: str) -> None:
    before = store.sql_query("select uuid, name, collection, property_version from streams order by uuid")
    with pytest.raises(BadSQL) as info:
        store.sql_query(query)
    assert info.value.code == StatusCode.BAD_SQL_VALUE
    assert info.value.msg
    after = store.sql_query("select uuid, name, collection, property_version from streams order by uuid")
    assert after == before and len(after) == len(STREAMS)


def test_wrong_parameters(store: MetadataStore, filled: dict[str, bytes]) -> None:
    with pytest.raises(BadSQL, match="placeholder"):
        store.sql_query("select name from streams where name = $1 or name = $2", ["a"])
    with pytest.raises(BadSQL):
        store.sql_query("select name from streams where name = $1", "a")  # type: ignore[arg-type]
    with pytest.raises(BadSQL):
        store.sql_query("select name from streams where name = $1", [object()])


def test_runaway_query_is_stopped(
    store: MetadataStore, filled: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_module, "QUERY_SECONDS", 0.2)
    with pytest.raises(BadSQL, match="longer"):
        store.sql_query(
            "with recursive c(x) as (select 1 union all select x + 1 from c) select count(*) from c"
        )
    assert store.sql_query("select count(*) as n from streams") == [{"n": len(STREAMS)}]


def test_ctes_subqueries_and_aggregates(store: MetadataStore, filled: dict[str, bytes]) -> None:
    rows = store.sql_query(
        "with per as (select collection, count(*) as n from streams group by collection)"
        " select collection, n from per where n > $1 order by collection",
        [1],
    )
    assert rows == [{"collection": "sunshine/PMU1", "n": 2}]
    nested = store.sql_query("select x.n from (select name as n from streams where unit = 'hertz') as x")
    assert nested == [{"n": "freq"}]


def test_view_follows_changes_and_writes(
    store: MetadataStore, filled: dict[str, bytes], clock: FakeClock
) -> None:
    uid = filled["sunshine/PMU1/L1MAG"]
    text_uuid = str(uuidlib.UUID(bytes=uid))
    store.set_annotations(uid, 1, {"poc": "carol"})
    clock.advance(5_000_000_000)
    store.record_write(uid, 1_700_000_100_000_000_000, 40)
    clock.advance(5_000_000_000)
    store.record_write(uid, 1_700_000_200_000_000_000, 60)
    (row,) = store.sql_query("select * from streams where uuid = $1", [text_uuid])
    assert row["annotations"]["poc"] == "carol" and row["property_version"] == 2
    assert datetime.fromisoformat(row["last_written"]).timestamp() == pytest.approx(1_700_000_200)
    assert datetime.fromisoformat(row["previous_last_written"]).timestamp() == pytest.approx(1_700_000_100)
    assert row["estimated_count_delta"] == 60
    assert row["long_term_autoregressive_average"] == pytest.approx(40 * 0.95 + 60 * 0.05)
    assert datetime.fromisoformat(row["count_last_updated"]).timestamp() == pytest.approx(clock.now_ns / 1e9)
    assert datetime.fromisoformat(row["previous_count_last_updated"]).timestamp() == pytest.approx(
        (clock.now_ns - 5_000_000_000) / 1e9
    )
    assert row["last_written"] > row["previous_last_written"]  # the ISO text sorts as time does
    store.obliterate_stream(uid)
    assert store.sql_query("select * from streams where uuid = $1", [text_uuid]) == []


def test_rewrite_keeps_literals_comments_and_identifiers() -> None:
    text, _ = rewrite(
        "select '$1::x -> y' /* $2 */ , \"$3\" -- $4\n from streams where a->$5::character varying(3)"
    )
    assert text == "select '$1::x -> y' /* $2 */ , \"$3\" -- $4\n from streams where a->>?5"


ARROW_QUERIES = [
    ("SELECT COUNT(uuid) FROM streams WHERE annotations->$1::text IS NOT NULL", ["poc"]),
    ("select name, annotations ->> 'poc' as poc from streams order by name, collection", []),
    ("select s.name from streams as s where s.annotations -> $1 = $2", ["region", "west"]),
    ("select name from streams where (annotations) ->> 'impedance' = '3'", []),
    ("select coalesce(annotations -> 'poc', 'none') as p from streams order by uuid", []),
]


@pytest.mark.skipif(not sql_module.NATIVE_JSON_ARROWS, reason="needs SQLite >= 3.38 to compare against")
@pytest.mark.parametrize(("query", "params"), ARROW_QUERIES)
def test_arrow_fallback_for_old_sqlite_matches_native(
    store: MetadataStore, filled: dict[str, bytes], query: str, params: list[str]
) -> None:
    fallback = sql_module.SqlSandbox(store.path, native_arrows=False)
    try:
        text, _ = rewrite(query, native_arrows=False)
        assert "->" not in text and "hstore_get(" in text
        expected = store.sql_query(query, params)
        assert fallback.query(query, params) == expected
        assert any(any(value for value in row.values()) for row in expected)
    finally:
        fallback.close()


def test_arrow_fallback_refuses_what_it_cannot_rewrite() -> None:
    with pytest.raises(BadSQL):
        rewrite("select -> 'x' from streams", native_arrows=False)
    with pytest.raises(BadSQL):
        rewrite("select annotations -> from streams", native_arrows=False)


def test_queries_from_many_threads_alongside_writes(store: MetadataStore, filled: dict[str, bytes]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    expected = store.sql_query("select uuid, name from streams order by uuid")
    writer_uuid = filled["sunshine/PMU2/L1MAG"]

    def read(index: int) -> list[dict[str, object]]:
        if index % 4 == 0:
            store.record_write(writer_uuid, 1_700_000_000_000_000_000 + index, 1)
        return store.sql_query("select uuid, name from streams order by uuid")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(read, range(64)))
    assert results == [expected] * 64
    (row,) = store.sql_query("select estimated_count_delta from streams where name = $1 and collection = $2",
                             ["L1MAG", "sunshine/PMU2"])  # fmt: skip
    assert row == {"estimated_count_delta": 1}


@pytest.mark.parametrize(
    "query",
    [
        "select distinct(skeys(annotations)) as k from streams where collection like $1",
        "select distinct skeys(s.annotations) as k from streams s where s.collection like $1",
        "select distinct skeys(annotations) as k from streams as s where collection like $1 order by 1",
    ],
)
def test_skeys_forms(store: MetadataStore, filled: dict[str, bytes], query: str) -> None:
    expected = sorted(
        {key for collection, _, notes in STREAMS if collection.startswith("sunshine/") for key in notes}
    )
    assert sorted(row["k"] for row in store.sql_query(query, ["sunshine/%"])) == expected


def test_skeys_needs_the_streams_table(store: MetadataStore) -> None:
    with pytest.raises(BadSQL, match="skeys"):
        store.sql_query("select skeys(annotations)")
    with pytest.raises(BadSQL, match="skeys"):
        store.sql_query("select skeys(tags) from streams")
