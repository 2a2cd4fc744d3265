"""Result tables cast to the asked schema: the numpy path gives exactly what ``Table.cast`` gives."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pingthings.timeseries._conform import conform
from pingthings.timeseries.constants import STAT_F32_SCHEMA, STAT_F64_SCHEMA

SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e300, -1e300, 3.4028235e38, 1.0000000596046448, 5e-324]


def _stat_table(values: list[np.ndarray], pieces: int) -> pa.Table:
    n = len(values[0])
    columns = {
        "time": pa.array(np.arange(n, dtype=np.int64)).cast(STAT_F64_SCHEMA.field("time").type),
        "min": pa.array(values[0]),
        "mean": pa.array(values[1]),
        "max": pa.array(values[2]),
        "count": pa.array(np.arange(n, dtype=np.uint64)),
        "stddev": pa.array(values[3]),
    }
    table = pa.Table.from_pydict(columns, schema=STAT_F64_SCHEMA)
    if pieces > 1 and n:
        cuts = sorted({0, n, *np.linspace(0, n, pieces + 1, dtype=int).tolist()})
        table = pa.concat_tables([table.slice(a, b - a) for a, b in itertools.pairwise(cuts)])
    return table


def _bits(table: pa.Table) -> list[list[int]]:
    out = []
    for column in table.columns:
        data = column.to_numpy()
        out.append(
            data.view(np.uint32 if data.dtype == np.float32 else np.uint64).tolist()
            if data.dtype.kind == "f"
            else data.astype("int64").tolist()
        )
    return out


floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64), st.sampled_from(SPECIAL))


@settings(max_examples=100, deadline=None)
@given(data=st.data(), n=st.integers(min_value=0, max_value=40), pieces=st.integers(min_value=1, max_value=4))
def test_same_bits_as_arrow_cast(data: st.DataObject, n: int, pieces: int) -> None:
    values = [
        np.array(data.draw(st.lists(floats, min_size=n, max_size=n)), dtype=np.float64) for _ in range(4)
    ]
    table = _stat_table(values, pieces)
    ours, arrows = conform(table, STAT_F32_SCHEMA), table.cast(STAT_F32_SCHEMA)
    assert ours.schema.equals(arrows.schema)
    assert _bits(ours) == _bits(arrows)


def test_matching_or_no_schema_returns_the_table_itself() -> None:
    table = _stat_table([np.ones(3)] * 4, 1)
    assert conform(table, None) is table
    assert conform(table, STAT_F64_SCHEMA) is table


def test_nulls_and_other_casts_go_through_arrow() -> None:
    table = _stat_table([np.ones(3)] * 4, 1)
    with_null = table.set_column(1, "min", pa.array([1.0, None, 2.0]))
    nullable = pa.schema([f.with_nullable(True) for f in STAT_F32_SCHEMA])
    assert conform(with_null, nullable).equals(with_null.cast(nullable))
    with pytest.raises(ValueError, match="null values to non-nullable"):
        conform(with_null, STAT_F32_SCHEMA)
    renamed = pa.schema([pa.field("t" if f.name == "time" else f.name, f.type) for f in STAT_F32_SCHEMA])
    with pytest.raises(ValueError):
        conform(table, renamed)  # Arrow's own error for a schema that does not fit


def test_conforming_statistics_does_not_import_pandas(imports_pandas: Callable[[str], bool]) -> None:
    # pa.array(numpy) and Array.to_numpy import pandas (0.4 s) the first time; a client that never
    # uses pandas paid that on its first windows query.
    script = (
        "import sys, numpy as np\n"
        "from pingthings.timeseries._conform import conform\n"
        "from pingthings.timeseries.constants import STAT_F32_SCHEMA\n"
        "from pingthings.wire.arrow import stat_table\n"
        "t = stat_table(np.arange(3), *[np.ones(3)] * 3, np.ones(3, np.uint64), np.ones(3))\n"
        "assert conform(t.slice(1), STAT_F32_SCHEMA).schema.equals(STAT_F32_SCHEMA)\n"
    )
    assert not imports_pandas(script)
