"""The live min/max monitor and its server-sent-events endpoint, run from docs/guides/live.md."""

from __future__ import annotations

import json
import re
import threading
import uuid
import warnings
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2 for its test client; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from pingthings.server import Server
from pingthings.timeseries.async_client import AsyncClient
from pingthings.timeseries.client import Client

from .helpers import T0, new_stream

PAGE = Path(__file__).resolve().parents[2] / "docs" / "guides" / "live.md"


def load_example(*names: str) -> dict[str, Any]:
    """Execute the page's Python blocks whose first line names one of ``names``, in order."""
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.DOTALL)
    namespace: dict[str, Any] = {"__name__": "live_docs_example"}
    for name in names:
        (block,) = [b for b in blocks if b.startswith(f"# {name}")]
        exec(compile(block, f"{PAGE.name}:{name}", "exec"), namespace)
    return namespace


def wait_until(condition: Any, timeout: float = 10.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.005)):
        if condition():
            done.set()
            break
        threading.Event().wait(0.005)
    assert done.is_set(), "condition never became true"


@pytest.mark.anyio
async def test_the_minmax_monitor_reports_each_batch(server: Server, unique_collection: str) -> None:
    example = load_example("live_minmax.py")
    hub = server.runtime.hub
    assert hub is not None
    async with await AsyncClient.connect(endpoint=server.endpoint) as client:
        stream = await new_stream(client, unique_collection)
        streams = await client.streams_in_collection(unique_collection)
        batches = [np.array([3.0, -1.0, 2.0]), np.array([5.0, 4.0]), np.array([0.5])]
        events = []
        async with anyio.create_task_group() as tg:

            async def insert_when_live() -> None:
                with anyio.fail_after(10):
                    while hub.subscriber_count(stream.uuid.bytes) == 0:
                        await anyio.sleep(0.005)
                for i, values in enumerate(batches):
                    times = T0 + 10 * i + np.arange(len(values), dtype=np.int64)
                    await stream.insert((times, values))

            tg.start_soon(insert_when_live)
            monitor = example["minmax_events"](streams)
            async for event in monitor:
                events.append(event)
                if len(events) == len(batches):
                    break
            await monitor.aclose()
    assert [(e["min"], e["max"]) for e in events] == [(-1.0, 3.0), (4.0, 5.0), (0.5, 0.5)]
    assert [(e["running_min"], e["running_max"]) for e in events] == [(-1.0, 3.0), (-1.0, 5.0), (-1.0, 5.0)]
    assert events[-1]["last_time_ns"] == T0 + 20 and {e["stream"] for e in events} == {str(stream.uuid)}


def test_the_sse_endpoint_streams_events(server: Server, unique_collection: str) -> None:
    example = load_example("live_minmax.py", "live_sse.py")
    example["ENDPOINT"] = server.endpoint
    hub = server.runtime.hub
    assert hub is not None
    with Client.connect(endpoint=server.endpoint) as conn:
        stream = conn.create(uuid.uuid4(), unique_collection, {"name": "sse"})

        def insert_when_live() -> None:
            wait_until(lambda: hub.subscriber_count(stream.uuid.bytes) == 1)
            for i in range(3):
                stream.insert((np.array([T0 + i], dtype=np.int64), np.array([float(i)])))

        inserter = threading.Thread(target=insert_when_live)
        inserter.start()
        with TestClient(example["app"]) as web:
            response = web.get(f"/live/{unique_collection}?events=3")
        inserter.join(10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [
        json.loads(line[len("data: ") :]) for line in response.text.splitlines() if line.startswith("data: ")
    ]
    assert [e["max"] for e in events] == [0.0, 1.0, 2.0]
    wait_until(lambda: hub.subscriber_count(stream.uuid.bytes) == 0)  # the subscription was closed
