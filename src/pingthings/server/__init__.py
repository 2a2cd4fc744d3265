"""The embedded BTrDB-v5-compatible server: storage engine, metadata store and gRPC services.

``Server`` is imported lazily so that importing a sub-package (engine, metadata) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pingthings.server.app import Server

__all__ = ["Server"]


def __getattr__(name: str) -> Any:
    if name == "Server":
        from pingthings.server.app import Server

        return Server
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
