"""The guide's example apps with one more route, ``/_debug/stats``, for the tests and the bench.

``APP_EXAMPLE`` names the example module (``async_app`` or ``sync_app``, on ``PYTHONPATH``); the
route reports the worker process's task count, resident memory and open file descriptors.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

example = importlib.import_module(os.environ.get("APP_EXAMPLE", "async_app"))
app = example.app


def _trio_root() -> Any:
    if "trio" not in sys.modules:
        return None
    import trio

    try:
        return trio.lowlevel.current_root_task()
    except RuntimeError:  # not running under trio
        return None


def _task_count() -> int:
    root = _trio_root()
    if root is not None:
        count, pending = 0, [root]
        while pending:
            task = pending.pop()
            count += 1
            for nursery in task.child_nurseries:
                pending.extend(nursery.child_tasks)
        return count
    import asyncio

    return len(asyncio.all_tasks())


def _rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def stats() -> dict[str, Any]:
    """Tasks, RSS and fds of this worker process."""
    return {"tasks": _task_count(), "rss": _rss_bytes(), "fds": len(os.listdir("/proc/self/fd"))}


app.add_api_route("/_debug/stats", stats, methods=["GET"])
