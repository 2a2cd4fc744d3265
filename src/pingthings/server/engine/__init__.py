"""The storage engine: one copy-on-write statistics tree per stream, persisted in SQLite.

See :class:`Engine` for the API; ``docs/architecture.md`` (section Engine) is the contract.
"""

from pingthings.server.engine.engine import Engine
from pingthings.server.engine.merge import MergePolicy
from pingthings.server.engine.stats import StatWindows

__all__ = ["Engine", "MergePolicy", "StatWindows"]
