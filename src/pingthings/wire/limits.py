"""Numeric limits of the BTrDB time axis and tree, shared by the client and the server."""

from __future__ import annotations

#: Earliest valid timestamp, ns since the epoch: -(16 << 56) = -2**60 (≈ 1933-06-20).
MIN_TIME: int = -(16 << 56)
#: Exclusive upper bound of the time axis: 48 << 56 = 3 * 2**60 (≈ 2079-08-08).
#: A query's ``end`` must be < TIME_LIMIT; an inserted point must be < TIME_LIMIT - 1.
TIME_LIMIT: int = 48 << 56
#: Largest point width (log2 of a window in ns) a server accepts.
MAX_POINT_WIDTH: int = 63
#: The first data version of a newly created, never written stream.
FIRST_VERSION: int = 10
#: Points per Insert that every v5 client sends at most; the server accepts more.
INSERT_BATCH_SIZE: int = 50_000
