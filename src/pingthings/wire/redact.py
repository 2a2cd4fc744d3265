"""Keep API keys out of logs.

hpack (the HTTP/2 header codec under h2 and grpclib) logs every header it decodes at DEBUG
level, ``authorization: Bearer <key>`` included. Turning on DEBUG logging to chase a problem
would then write the key to the log. :func:`install` adds a filter to hpack's loggers that
replaces what follows ``Bearer`` with ``<redacted>``; the record is kept otherwise.
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactBearer", "install"]

_BEARER = re.compile(r"(Bearer\s+)[^'\"\s)\]]+", re.IGNORECASE)
_LOGGERS = ("hpack.hpack", "hpack.table")


class RedactBearer(logging.Filter):
    """A logging filter that blanks bearer tokens in a record's formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place when its message holds a bearer token; always keep it."""
        try:
            message = record.getMessage()
        except Exception:  # a broken record: leave it to the handler to report
            return True
        if "earer" in message:
            redacted = _BEARER.sub(r"\1<redacted>", message)
            if redacted != message:
                record.msg, record.args = redacted, None
        return True


_FILTER = RedactBearer()


def install() -> None:
    """Attach the filter to hpack's loggers (idempotent)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
