"""Standard output that the reader closed early (``pingthings query ... | head``)."""

from __future__ import annotations

import os
import sys


def quiet_exit_on_closed_stdout() -> None:
    """Point standard output at ``/dev/null`` so nothing more is written to the closed pipe.

    Python flushes ``sys.stdout`` once more at exit; without this, that flush fails again and
    prints an error after the command has already done all the reader wanted.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (tests); nothing will flush to a pipe
        pass
    finally:
        os.close(devnull)
