"""Unknown enum values and invalid fields get a 4xx status naming the field; internals never leak."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pytest

from pingthings._proto import v5api
from pingthings.server import Server
from pingthings.server.service.replies import status_of
from pingthings.wire import points
from tests.server.helpers import create
from tests.server.rawclient import RawClient, stat_of

T0 = 1_000_000_000


def _arrow_insert_bytes() -> bytes:
    table = pa.table({"time": pa.array([T0], pa.timestamp("ns", tz="UTC")), "value": [1.0]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def test_insert_with_unknown_merge_policy_is_421_naming_the_field(
    server: Server, unique_collection: str
) -> None:
    with RawClient(server.endpoint) as client:
        uu = create(client, unique_collection)
        request = points.encode_insert(uu, np.array([T0], np.int64), np.array([1.0]), merge_policy=99)
        stat = stat_of(client.unary("Insert", request))
        assert stat is not None and stat.code == 421, stat
        assert "merge_policy" in stat.msg and "99" in stat.msg
        assert "Error" not in stat.msg


@pytest.mark.parametrize(
    ("method", "request_message", "field"),
    [
        (
            "ArrowInsert",
            v5api.ArrowInsertParams(merge_policy=99, arrow_bytes=_arrow_insert_bytes()),
            "merge_policy",
        ),
        ("GenerateCSV", v5api.GenerateCsvParams(query_type=7), "query_type"),
    ],
)
def test_unknown_enum_values_are_421_naming_the_field(
    server: Server, unique_collection: str, method: str, request_message: object, field: str
) -> None:
    with RawClient(server.endpoint) as client:
        uu = create(client, unique_collection)
        if isinstance(request_message, v5api.ArrowInsertParams):
            request_message.uuid = uu
        else:
            assert isinstance(request_message, v5api.GenerateCsvParams)
            request_message.streams = [v5api.StreamCsvConfig(uuid=uu, label="x")]
        if method == "ArrowInsert":
            replies = [client.unary(method, request_message)]  # type: ignore[arg-type]
        else:
            replies = client.stream(method, request_message)  # type: ignore[arg-type]
        stat = stat_of(replies[-1])
        assert stat is not None and stat.code == 421, stat
        assert field in stat.msg and "unknown value" in stat.msg


def test_unknown_subscribe_op_ends_the_call_with_421(server: Server, unique_collection: str) -> None:
    with RawClient(server.endpoint) as client:
        uu = create(client, unique_collection)
        update = bytes(v5api.SubscriptionUpdate(op=9, uuid=[uu]))  # type: ignore[arg-type]
        replies = list(client.bidi("Subscribe", [update], timeout=10))
        stat = stat_of(replies[-1])
        assert stat is not None and stat.code == 421 and "'op'" in stat.msg, stat


def test_internal_errors_report_an_incident_id_and_nothing_else(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="pingthings.server"):
        stat = status_of(IndexError("pop from an empty deque"))
    assert stat.code == 500
    assert "IndexError" not in stat.msg and "deque" not in stat.msg and "Traceback" not in stat.msg
    incident = stat.msg.split("incident ")[1].split(";")[0]
    # The server log keeps the detail, under the same incident id.
    logged = [r for r in caplog.records if incident in r.getMessage()]
    assert logged and logged[0].exc_info is not None and "deque" in str(logged[0].exc_info[1])
