"""Find anyio's buffer of received, not yet decrypted TLS bytes.

The connection's reader uses it to take every TLS record already received in one read round
(:meth:`~.connection.Connection._drain_tls`). anyio does not publish this buffer: it is the private
``TLSStream._read_bio``. When a future anyio no longer has it, :func:`tls_read_buffer` returns None and
reports the fallback once (:func:`pingthings.fastpaths.report_fallback`); reads then take one round per
record: slower, never wrong.
"""

from __future__ import annotations

import ssl

import anyio.streams.tls

from pingthings.fastpaths import report_fallback


def tls_read_buffer(stream: anyio.streams.tls.TLSStream) -> ssl.MemoryBIO | None:
    """The ``ssl.MemoryBIO`` holding ``stream``'s received ciphertext, or None if anyio hides it."""
    read_bio = getattr(stream, "_read_bio", None)
    if not isinstance(read_bio, ssl.MemoryBIO):
        report_fallback("tls-drain", "anyio's TLSStream has no _read_bio MemoryBIO")
        return None
    return read_bio
