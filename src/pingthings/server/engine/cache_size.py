"""The default budget of the decoded-block cache, derived from the machine's memory.

A fixed default is wrong on every machine but one: 256 MiB thrashes as soon as two day-long 120 Hz
channels (10^7 points, about 165 MB decoded each) are read in turn, and a large fixed figure would
be too much on a small board. The default is a quarter of the memory this process may use (the
smaller of physical memory and a cgroup limit, as in a container), but at least 256 MiB and at most
16 GiB. The cache fills only with blocks actually read, so an idle server holds none of it.
``pingthings serve --cache-mb`` and ``Server(cache_mb=...)`` override it.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Share of the usable memory given to the cache by default.
MEMORY_SHARE = 4
#: Smallest default budget (also used when the memory size cannot be found).
MIN_DEFAULT_BYTES = 256 << 20
#: Largest default budget.
MAX_DEFAULT_BYTES = 16 << 30

_CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)


def physical_memory() -> int | None:
    """Bytes of physical memory, or None where the platform does not say."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * size if pages > 0 and size > 0 else None


def cgroup_limit() -> int | None:
    """The memory limit of this process's cgroup in bytes, or None when there is none."""
    for path in _CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # "max" or a huge number: no limit
            return int(text)
    return None


def usable_memory() -> int | None:
    """The smaller of physical memory and the cgroup limit, in bytes (None if neither is known)."""
    known = [m for m in (physical_memory(), cgroup_limit()) if m is not None]
    return min(known) if known else None


def default_cache_bytes(memory: int | None = None) -> int:
    """The default cache budget for a machine with ``memory`` usable bytes (None: this machine's)."""
    if memory is None:
        memory = usable_memory()
    if memory is None:
        return MIN_DEFAULT_BYTES
    return max(MIN_DEFAULT_BYTES, min(MAX_DEFAULT_BYTES, memory // MEMORY_SHARE))
