"""The server process's allocator settings (see ``pingthings.server.malloc_tuning``)."""

from __future__ import annotations

import platform
import sys

from pingthings.server.malloc_tuning import keep_freed_memory


def test_applied_exactly_where_glibc_is_the_allocator() -> None:
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert keep_freed_memory() is glibc
    assert keep_freed_memory() is glibc  # applying the settings again is harmless
