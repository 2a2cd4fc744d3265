"""Annotation values read from the wire bytes, for servers that store them as raw bytes (BTrDB v4).

A v5 descriptor carries each annotation as ``KeyOptValue{string key = 1; OptValue val = 2}`` with
``OptValue{string value = 1}``. A BTrDB 4 server keeps ``KeyValue{string key = 1; bytes value = 2}``
instead and hands back whatever bytes it stored: the serialized ``OptValue`` a v5 client sent with
Create, but the bare text (``b"A2"``) after SetStreamAnnotations. Those bare bytes are not a valid
``OptValue``, and the lenient message parser turns them into an empty string. So the client reads the
annotation values again from the descriptor's bytes: a value that is a well-formed ``OptValue`` is
taken from it, any other value is taken as UTF-8 text, and bytes that are not text raise
:class:`~pingthings.timeseries.exceptions.MetadataDecodeError` naming the stream and key.
"""

from __future__ import annotations

from uuid import UUID

from pingthings._proto.v5api import OptValue, StreamDescriptor
from pingthings.timeseries.exceptions import MetadataDecodeError
from pingthings.wire.protowire import LEN, WireFormatError, read_key, read_length, skip_field

STREAM_INFO_DESCRIPTOR = 4  # StreamInfoResponse.descriptor
LOOKUP_RESULTS = 2  # LookupStreamsResponse.results
_DESCRIPTOR_ANNOTATIONS = 4  # StreamDescriptor.annotations
_KEY, _VAL = 1, 2  # KeyOptValue fields
_OPT_VALUE = 1  # OptValue.value


def len_fields(data: bytes | memoryview, number: int) -> list[bytes | memoryview]:
    """The payloads of every length-delimited field ``number`` at the top level of a message, in order.

    Raises
    ------
    WireFormatError
        If the message is not well formed.
    """
    out: list[bytes | memoryview] = []
    pos, end = 0, len(data)
    while pos < end:
        field, wire_type, pos = read_key(data, pos, end)
        if field == number and wire_type == LEN:
            start, pos = read_length(data, pos, end, field)
            out.append(data[start:pos])
        else:
            pos = skip_field(data, pos, end, field, wire_type)
    return out


def _strict_opt_value(raw: bytes | memoryview) -> str | None:
    """The text of ``raw`` read as a well-formed ``OptValue``, or None if it is not one."""
    value = ""
    pos, end = 0, len(raw)
    try:
        while pos < end:
            field, wire_type, pos = read_key(raw, pos, end)
            if field == _OPT_VALUE:
                if wire_type != LEN:
                    return None
                start, pos = read_length(raw, pos, end, field)
                value = bytes(raw[start:pos]).decode("utf-8")
            else:
                pos = skip_field(raw, pos, end, field, wire_type)
    except (WireFormatError, UnicodeDecodeError):
        return None
    return value


def annotation_text(raw: bytes | memoryview, stream: UUID, key: str) -> str:
    """The stored text of one annotation value given as the bytes of its ``val`` field.

    Raises
    ------
    MetadataDecodeError
        When the bytes are neither an ``OptValue`` nor UTF-8 text.
    """
    value = _strict_opt_value(raw)
    if value is not None:
        return value
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        shown = bytes(raw[:32]).hex()
        raise MetadataDecodeError(
            f"annotation {key!r} of stream {stream} holds {len(raw)} bytes that are neither a v5 OptValue "
            f"nor UTF-8 text (starting 0x{shown}); the server stored it in a format this client cannot read"
        ) from None


def restore_annotations(descriptor: StreamDescriptor, raw_descriptor: bytes | memoryview) -> None:
    """Replace the annotation values of a parsed ``descriptor`` by those read from its own bytes.

    Parameters
    ----------
    descriptor
        The descriptor as the message parser decoded it (annotations in wire order).
    raw_descriptor
        The bytes it was decoded from.
    """
    if not descriptor.annotations:
        return
    stream = UUID(bytes=bytes(descriptor.uuid)) if len(descriptor.uuid) == 16 else UUID(int=0)
    try:
        entries = len_fields(raw_descriptor, _DESCRIPTOR_ANNOTATIONS)
    except WireFormatError as exc:
        raise MetadataDecodeError(f"the descriptor of stream {stream} is not well formed: {exc}") from None
    if len(entries) != len(descriptor.annotations):
        return  # not the bytes of this descriptor; keep what the parser found
    for pair, entry in zip(descriptor.annotations, entries, strict=True):
        try:
            values = len_fields(entry, _VAL)
        except WireFormatError:
            values = []
        if pair.val is not None and values:
            pair.val = OptValue(value=annotation_text(values[-1], stream, pair.key))


def restore_in_response(message: object, raw: bytes | memoryview, field: int) -> None:
    """Apply :func:`restore_annotations` to the descriptors a response carries in ``field``.

    ``message`` is the parsed StreamInfoResponse (``descriptor``, field 4) or LookupStreamsResponse
    (``results``, field 2); ``raw`` its bytes.
    """
    descriptors: list[StreamDescriptor]
    single = getattr(message, "descriptor", None)
    if isinstance(single, StreamDescriptor):
        descriptors = [single]
    else:
        descriptors = list(getattr(message, "results", None) or [])
    if not any(d.annotations for d in descriptors):
        return
    try:
        raw_descriptors = len_fields(raw, field)
    except WireFormatError:
        return
    if len(raw_descriptors) != len(descriptors):
        return
    for descriptor, raw_descriptor in zip(descriptors, raw_descriptors, strict=True):
        restore_annotations(descriptor, raw_descriptor)
