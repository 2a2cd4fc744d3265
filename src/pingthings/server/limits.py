"""Default bounds on what one request may make the server hold or do (see ``ServerConfig``)."""

from __future__ import annotations

#: Largest request message accepted, judged from its gRPC length prefix (64 MiB).
DEFAULT_MAX_MESSAGE_BYTES = 64 << 20
#: Longest SQL text of one ``sql_query``, in UTF-8 bytes (values belong in ``$N`` parameters).
DEFAULT_MAX_SQL_BYTES = 64 << 10
#: Most distinct streams one ArrowMultiValues or GenerateCSV request may name.
DEFAULT_MAX_STREAMS_PER_REQUEST = 1024
#: Time budget of one ``sql_query``, in seconds.
DEFAULT_SQL_SECONDS = 10.0
#: Time budget of one GenerateCSV request, in seconds.
DEFAULT_CSV_SECONDS = 120.0
#: Seconds in-flight calls get to finish when the server stops (then they are cancelled and
#: running SQL queries interrupted), so SIGTERM stops even a busy server within 10 s.
DEFAULT_SHUTDOWN_GRACE = 5.0
