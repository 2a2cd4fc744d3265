"""``pingthings.timeseries``: a client for BTrDB v5 / PredictiveGrid time series servers.

>>> import pingthings.timeseries as pt
>>> conn = pt.connect(endpoint="127.0.0.1:4410")  # doctest: +SKIP
>>> conn.streams_in_collection("sensors")  # doctest: +SKIP

``connect`` returns the synchronous :class:`Client`; async code uses
``await AsyncClient.connect(...)``. Both take the same arguments (see
:mod:`pingthings.timeseries.config` for where unset values come from).
"""

from __future__ import annotations

import importlib
from typing import Any

from pingthings.timeseries import exceptions
from pingthings.timeseries.async_client import AsyncClient
from pingthings.timeseries.async_stream import AsyncStream
from pingthings.timeseries.async_streamset import AsyncStreamSet
from pingthings.timeseries.client import Client, connect
from pingthings.timeseries.event_loop import ClientEventLoop
from pingthings.timeseries.stream import Stream
from pingthings.timeseries.streamset import StreamSet

__all__ = [
    "AsyncClient",
    "AsyncStream",
    "AsyncStreamSet",
    "Client",
    "ClientEventLoop",
    "Stream",
    "StreamSet",
    "connect",
    "exceptions",
]

_LAZY_SUBMODULES = frozenset({"constants", "utils"})


def __getattr__(name: str) -> Any:
    # ``pt.utils`` (time helpers) and ``pt.constants`` are loaded on first use.
    if name in _LAZY_SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
