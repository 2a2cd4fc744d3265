"""Strict decoding of control-plane request messages.

betterproto2's parser is lenient: it turns many malformed payloads into default-valued
messages. A server must instead tell the caller that the request was malformed, so every
request is first walked field by field against the message class's schema (varints terminate,
lengths stay inside the buffer, wire types match the declared field types, nested messages are
well formed, strings are UTF-8) and only then parsed.
"""

from __future__ import annotations

from typing import Any, TypeVar

import betterproto2

from pingthings.server.errors import WrongArgs
from pingthings.wire.protowire import FIXED32 as _FIXED32
from pingthings.wire.protowire import FIXED64 as _FIXED64
from pingthings.wire.protowire import LEN as _LEN
from pingthings.wire.protowire import VARINT as _VARINT
from pingthings.wire.protowire import WireFormatError, read_varint

M = TypeVar("M", bound=betterproto2.Message)

_WIRE_TYPE_OF: dict[str, int] = {
    "bool": _VARINT,
    "enum": _VARINT,
    "int32": _VARINT,
    "int64": _VARINT,
    "uint32": _VARINT,
    "uint64": _VARINT,
    "sint32": _VARINT,
    "sint64": _VARINT,
    "double": _FIXED64,
    "fixed64": _FIXED64,
    "sfixed64": _FIXED64,
    "float": _FIXED32,
    "fixed32": _FIXED32,
    "sfixed32": _FIXED32,
    "string": _LEN,
    "bytes": _LEN,
    "message": _LEN,
    "map": _LEN,
}


class MalformedMessage(ValueError):
    """The payload is not a well-formed encoding of the expected message."""


def _read_varint(data: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    """:func:`pingthings.wire.protowire.read_varint`, its errors raised as :class:`MalformedMessage`."""
    try:
        return read_varint(data, pos, end)
    except WireFormatError as exc:
        raise MalformedMessage(str(exc)) from None


def check_structure(
    data: bytes | memoryview, cls: type[betterproto2.Message], pos: int = 0, end: int | None = None
) -> None:
    """Raise :class:`MalformedMessage` unless ``data[pos:end]`` is a well-formed ``cls``.

    Unknown fields are allowed (as protobuf requires) as long as they are well formed.
    """
    end = len(data) if end is None else end
    proto = cls()._betterproto  # type: ignore[arg-type]
    meta_by_number = {meta.number: (name, meta) for name, meta in proto.meta_by_field_name.items()}
    while pos < end:
        key, pos = _read_varint(data, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise MalformedMessage("field number 0")
        if wire_type == _VARINT:
            value, pos = _read_varint(data, pos, end)
            if number in meta_by_number:
                _check_enum_value(cls, *meta_by_number[number], value)
        elif wire_type == _FIXED64:
            pos += 8
        elif wire_type == _FIXED32:
            pos += 4
        elif wire_type == _LEN:
            length, pos = _read_varint(data, pos, end)
            start, pos = pos, pos + length
            if pos <= end and number in meta_by_number:
                _check_len_field(data, start, pos, cls, *meta_by_number[number])
        else:
            raise MalformedMessage(f"field {number} has unsupported wire type {wire_type}")
        if pos > end:
            raise MalformedMessage(f"field {number} runs past the end of the message")
        if number in meta_by_number:
            name, meta = meta_by_number[number]
            expected = _WIRE_TYPE_OF.get(meta.proto_type, _LEN)
            packed_ok = meta.repeated and wire_type == _LEN and expected != _LEN
            if wire_type != expected and not packed_ok:
                raise MalformedMessage(
                    f"field {name!r} of {cls.__name__} has wire type {wire_type}, expected {expected}"
                )


def _check_enum_value(
    cls: type[betterproto2.Message], name: str, meta: betterproto2.FieldMetadata, value: int
) -> None:
    """Refuse a value that is not a member of the field's enum (proto3 would keep it silently)."""
    if meta.proto_type != "enum":
        return
    enum_cls: Any = cls()._betterproto.cls_by_field[name]  # type: ignore[arg-type]
    if value >= 1 << 63:  # enums are int32 on the wire: negative values arrive sign-extended
        value -= 1 << 64
    known = {int(member.value): member.name for member in enum_cls}
    if value not in known:
        choices = ", ".join(f"{number} ({label})" for number, label in sorted(known.items()))
        raise MalformedMessage(f"field {name!r} has unknown value {value}; expected one of {choices}")


def _check_len_field(
    data: bytes | memoryview,
    start: int,
    stop: int,
    cls: type[betterproto2.Message],
    name: str,
    meta: betterproto2.FieldMetadata,
) -> None:
    if meta.proto_type == "string":
        try:
            bytes(data[start:stop]).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedMessage(f"field {name!r} of {cls.__name__} is not valid UTF-8") from exc
    elif meta.proto_type == "message":
        nested = cls()._betterproto.cls_by_field[name]  # type: ignore[arg-type]
        check_structure(data, nested, start, stop)


def decode_request(data: bytes, cls: type[M]) -> M:
    """Parse a request strictly, raising :class:`~pingthings.server.errors.WrongArgs` (421) if malformed.

    Parameters
    ----------
    data
        The gRPC message payload.
    cls
        The betterproto2 message class expected.
    """
    if not data:  # an empty message (an Info call's) is the default one: nothing to check or parse
        return cls()
    try:
        check_structure(data, cls)
        return cls.parse(data)
    except MalformedMessage as exc:
        raise WrongArgs(f"malformed {cls.__name__} message: {exc}") from None
    except Exception as exc:  # betterproto2 raises assorted errors on bad input
        raise WrongArgs(f"malformed {cls.__name__} message: {exc}") from None
