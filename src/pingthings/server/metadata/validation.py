"""Checks of collections, tags and annotations, raising the v5 status codes.

Rules (btrdb-semantics §5 and the platform documentation):

* collection: valid UTF-8 text without NUL, 1..255 bytes once encoded (407);
* tag keys: only the documented stream columns (:data:`ALLOWED_TAG_KEYS`, 408); a stream must
  carry a non-empty ``name`` tag;
* tag values: text of at most 255 characters without NUL (409), or ``None`` (a NULL tag);
* annotation keys: lenient on purpose, because existing datasets use keys such as ``PMU_ID``
  that the old ``^[a-z][a-z0-9_.]*$`` rule would refuse: any non-empty text of at most 255
  characters without NUL (408);
* annotation values: text of at most 255 characters without NUL (409), or ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pingthings.server.errors import InvalidCollection, InvalidTagKey, InvalidTagValue, WrongArgs

#: Tag keys a stream may carry (the documented columns of the platform's stream table).
ALLOWED_TAG_KEYS: frozenset[str] = frozenset(
    {
        "name",
        "unit",
        "ingress",
        "distiller",
        "source",
        "device_id",
        "samples_per_second",
        "time_precision",
        "value_precision",
        "dynamic",
        "continuous",
        "description",
        "alt_name",
        "alt_id",
        "norm_factor",
        "scaling_factor",
        "bias_factor",
        "hidden",
    }
)
#: Longest collection, in UTF-8 bytes.
MAX_COLLECTION_BYTES = 255
#: Longest tag or annotation value, and longest annotation key, in characters.
MAX_VALUE_CHARS = 255
#: Tag values that mark a stream hidden (compared case-insensitively).
HIDDEN_TRUE_VALUES = frozenset({"true", "1", "yes"})

_ALLOWED_TEXT = ", ".join(sorted(ALLOWED_TAG_KEYS))


def check_uuid(uuid: object) -> bytes:
    """Return ``uuid`` if it is 16 bytes, else raise WrongArgs (421)."""
    if not isinstance(uuid, (bytes, bytearray)) or len(uuid) != 16:
        raise WrongArgs("a stream uuid must be exactly 16 bytes")
    return bytes(uuid)


def check_collection(collection: object) -> str:
    """Validate a collection name for storing (407 when invalid)."""
    if not isinstance(collection, str):
        raise InvalidCollection("collection must be a string")
    try:
        size = len(collection.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidCollection("collection is not valid UTF-8") from None
    if size == 0:
        raise InvalidCollection("collection must not be empty")
    if size > MAX_COLLECTION_BYTES:
        raise InvalidCollection(f"collection is {size} bytes long; the limit is {MAX_COLLECTION_BYTES}")
    if "\x00" in collection:
        raise InvalidCollection("collection must not contain a NUL character")
    return collection


def check_collection_filter(collection: object) -> str:
    """Validate a collection or prefix used as a filter: empty is allowed (all collections)."""
    if collection is None or collection == "":
        return ""
    return check_collection(collection)


def check_tag_key(key: object) -> str:
    """Raise InvalidTagKey (408) unless ``key`` is one of :data:`ALLOWED_TAG_KEYS`."""
    if not isinstance(key, str) or key not in ALLOWED_TAG_KEYS:
        raise InvalidTagKey(f"tag key {key!r} is not allowed; tag keys must be one of: {_ALLOWED_TEXT}")
    return key


def _check_value(kind: str, key: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidTagValue(f"{kind} {key!r} must have a string value, not {type(value).__name__}")
    if len(value) > MAX_VALUE_CHARS:
        raise InvalidTagValue(
            f"{kind} {key!r} value is {len(value)} characters long; the limit is {MAX_VALUE_CHARS}"
        )
    if "\x00" in value:
        raise InvalidTagValue(f"{kind} {key!r} value must not contain a NUL character")
    return value


def check_tag_value(key: str, value: object) -> str | None:
    """Validate one tag value (409 when invalid); ``None`` is a NULL tag."""
    return _check_value("tag", key, value)


def check_name_value(value: object) -> str:
    """The ``name`` tag must be non-empty text (409 otherwise)."""
    checked = check_tag_value("name", value)
    if not checked:
        raise InvalidTagValue("the 'name' tag is required and must be a non-empty string")
    return checked


def check_annotation_key(key: object) -> str:
    """Validate one annotation key (408 when invalid)."""
    if not isinstance(key, str) or key == "":
        raise InvalidTagKey("annotation keys must be non-empty strings")
    if len(key) > MAX_VALUE_CHARS:
        raise InvalidTagKey(f"annotation key is {len(key)} characters long; the limit is {MAX_VALUE_CHARS}")
    if "\x00" in key:
        raise InvalidTagKey("annotation keys must not contain a NUL character")
    return key


def check_annotation_value(key: str, value: object) -> str | None:
    """Validate one annotation value (409 when invalid); ``None`` is a NULL annotation."""
    return _check_value("annotation", key, value)


def as_mapping(kind: str, value: object) -> dict[str, str | None]:
    """``value`` as a dict (``None`` is empty); WrongArgs (421) when it is not a mapping."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise WrongArgs(f"{kind} must be a mapping of keys to values, not {type(value).__name__}")
    return dict(value)


def as_key_list(kind: str, value: object) -> list[object]:
    """``value`` as a list of keys (``None`` is empty); WrongArgs (421) for a bare string."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise WrongArgs(f"{kind} must be a list of keys, not {type(value).__name__}")
    return list(value)


def check_new_tags(tags: Mapping[str, str | None] | None) -> dict[str, str | None]:
    """Validate the full tag map of a new stream, which must carry a non-empty ``name``."""
    checked = {check_tag_key(k): check_tag_value(k, v) for k, v in as_mapping("tags", tags).items()}
    if "name" not in checked:
        raise InvalidTagKey("the 'name' tag is required: every stream needs a non-empty name")
    check_name_value(checked["name"])
    return checked


def check_annotations(annotations: Mapping[str, str | None] | None) -> dict[str, str | None]:
    """Validate an annotation map (keys 408, values 409)."""
    return {
        check_annotation_key(key): check_annotation_value(key, value)
        for key, value in as_mapping("annotations", annotations).items()
    }


def check_key_list(keys: Iterable[object], *, tags: bool) -> list[str]:
    """Validate a list of keys to remove."""
    items = as_key_list("the keys to remove", keys)
    return [check_tag_key(key) if tags else check_annotation_key(key) for key in items]


def is_hidden(tags: Mapping[str, str | None]) -> bool:
    """True when the ``hidden`` tag says so (``true``, ``1`` or ``yes``, any case)."""
    value = tags.get("hidden")
    return value is not None and value.strip().lower() in HIDDEN_TRUE_VALUES
