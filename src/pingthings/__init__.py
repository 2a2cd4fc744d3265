"""pingthings: a BTrDB / PredictiveGrid client (``pingthings.timeseries``) and an embeddable server."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # ``import pingthings as pt; pt.timeseries.connect()`` works without importing the client eagerly.
    if name == "timeseries":
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
