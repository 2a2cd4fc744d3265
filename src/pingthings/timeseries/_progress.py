"""Optional progress bars for long multi-stream operations (silent unless asked for)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Progress(Protocol):
    """What the fan-out needs from a progress bar."""

    def update(self, n: int = 1) -> object: ...


class _Silent:
    def update(self, n: int = 1) -> None:
        return None


@contextmanager
def progress_bar(total: int, enabled: bool, desc: str) -> Iterator[Progress]:
    """A tqdm bar over ``total`` steps when ``enabled``, else an object that does nothing.

    ``tqdm.auto`` picks a notebook widget inside Jupyter and a text bar in a terminal; when the
    output is neither (a log file, a pipe) the bar stays silent rather than writing ``\r`` fragments.
    """
    if not enabled:
        yield _Silent()
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="stream", leave=False, disable=None)
    try:
        yield bar
    finally:
        bar.close()
