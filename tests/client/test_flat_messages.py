"""Flat request messages encoded directly: the same bytes as betterproto2's encoder and protobuf's."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

import betterproto2
import btrdb.grpcinterface.btrdb_pb2 as official
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pingthings._proto
from pingthings._proto import v5api
from pingthings.timeseries._flat_messages import flat_encoder


def _message_classes() -> list[type]:
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(pingthings._proto.__path__, "pingthings._proto."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, betterproto2.Message) and cls is not betterproto2.Message:
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return sorted(found.values(), key=lambda c: f"{c.__module__}.{c.__qualname__}")


FLAT = [cls for cls in _message_classes() if flat_encoder(cls) is not None]

_INTS = {
    "int32": st.integers(-(2**31), 2**31 - 1),
    "int64": st.integers(-(2**63), 2**63 - 1),
    "uint32": st.integers(0, 2**32 - 1),
    "uint64": st.integers(0, 2**64 - 1),
    "fixed32": st.integers(0, 2**32 - 1),
    "sfixed32": st.integers(-(2**31), 2**31 - 1),
    "fixed64": st.integers(0, 2**64 - 1),
    "sfixed64": st.integers(-(2**63), 2**63 - 1),
}


def _values(cls: type) -> st.SearchStrategy[dict[str, Any]]:
    fields: dict[str, st.SearchStrategy[Any]] = {}
    blank = cls()
    for name, meta in cls._betterproto.meta_by_field_name.items():  # type: ignore[attr-defined]
        kind = meta.proto_type
        if kind == "bool":
            fields[name] = st.booleans()
        elif kind == "enum":
            fields[name] = st.sampled_from(list(type(getattr(blank, name))))
        elif kind == "string":
            fields[name] = st.text(max_size=20)
        elif kind == "bytes":
            fields[name] = st.binary(max_size=40)
        else:
            fields[name] = st.one_of(st.just(0), _INTS[kind])
    return st.fixed_dictionaries(fields)


def test_the_requests_of_data_calls_are_flat() -> None:
    names = {cls.__name__ for cls in FLAT}
    assert {
        "AlignedWindowsParams",
        "WindowsParams",
        "RawValuesParams",
        "ArrowRawValuesParams",
        "NearestParams",
        "ChangesParams",
        "DeleteParams",
        "FlushParams",
        "InfoParams",
    } <= names
    assert flat_encoder(v5api.ArrowMultiValuesParams) is None  # repeated fields
    assert flat_encoder(v5api.StreamInfoParams) is None  # an optional message field


@pytest.mark.parametrize("cls", FLAT, ids=lambda c: c.__name__)
@given(data=st.data())
def test_flat_encoding_is_the_generated_encoding(cls: type, data: st.DataObject) -> None:
    values = data.draw(_values(cls))
    message = cls(**values)
    assert flat_encoder(cls)(message) == bytes(message)  # type: ignore[misc]


@pytest.mark.parametrize(
    "cls",
    [c for c in FLAT if c.__module__.endswith("v5api") and hasattr(official, c.__name__)],
    ids=lambda c: c.__name__,
)
@given(data=st.data())
def test_flat_encoding_is_protobufs_encoding(cls: type, data: st.DataObject) -> None:
    values = data.draw(_values(cls))
    reference = getattr(official, cls.__name__)()
    by_number = reference.DESCRIPTOR.fields_by_number
    for name, value in values.items():
        number = cls._betterproto.meta_by_field_name[name].number  # type: ignore[attr-defined]
        setattr(reference, by_number[number].name, int(value) if isinstance(value, int) else value)
    assert flat_encoder(cls)(cls(**values)) == reference.SerializeToString()  # type: ignore[misc]


def test_values_of_the_wrong_type_are_refused_as_the_generated_encoder_refuses_them() -> None:
    encode = flat_encoder(v5api.WindowsParams)
    assert encode is not None
    for message in (v5api.WindowsParams(width=2.9), v5api.WindowsParams(uuid=3)):  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            bytes(message)
        with pytest.raises(TypeError):
            encode(message)
