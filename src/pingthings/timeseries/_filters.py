"""Matching stream metadata against the arguments of ``StreamSet.filter``.

For ``collection``, ``name`` and ``unit`` a ``str`` must equal the value ignoring case (as
btrdb-python's ``filter`` does); a compiled regular expression must be found (``re.search``)
somewhere in the value, with its own flags. For ``tags``/``annotations`` every given key must
match, a ``str`` exactly (case included), and a ``None`` value only asks for the key to be present.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

Matcher = str | re.Pattern[str]


def _check_matcher(value: Any, name: str) -> None:
    if value is not None and not isinstance(value, str | re.Pattern):
        raise TypeError(f"filter {name}= must be a str or a compiled regex, got {type(value).__name__}")


def check_filter_args(
    collection: Matcher | None,
    name: Matcher | None,
    unit: Matcher | None,
    tags: Mapping[str, Matcher | None] | None,
    annotations: Mapping[str, Any] | None,
) -> None:
    """Reject filter arguments of the wrong type before any stream is looked at."""
    _check_matcher(collection, "collection")
    _check_matcher(name, "name")
    _check_matcher(unit, "unit")
    for label, mapping in (("tags", tags), ("annotations", annotations)):
        if mapping is None:
            continue
        if not isinstance(mapping, Mapping):
            raise TypeError(f"filter {label}= must be a dict, got {type(mapping).__name__}")
        for key, value in mapping.items():
            if value is not None and not isinstance(value, str | re.Pattern):
                raise TypeError(f"filter {label}[{key!r}] must be a str, a compiled regex or None")


def value_matches(actual: Any, wanted: Matcher, ignore_case: bool = False) -> bool:
    """True if ``actual`` equals the str ``wanted`` (ignoring case when asked) or contains a match
    of the regex ``wanted``."""
    if actual is None:
        return False
    text = actual if isinstance(actual, str) else str(actual)
    if isinstance(wanted, re.Pattern):
        return wanted.search(text) is not None
    if ignore_case:
        return text.casefold() == wanted.casefold()
    return text == wanted


def mapping_matches(actual: Mapping[str, Any], wanted: Mapping[str, Matcher | None]) -> bool:
    """True if every key of ``wanted`` is in ``actual`` with a matching value (None: any value)."""
    for key, w in wanted.items():
        if key not in actual:
            return False
        if w is not None and not value_matches(actual[key], w):
            return False
    return True


def stream_matches(
    collection_value: str | None,
    tags_value: Mapping[str, Any],
    annotations_value: Mapping[str, Any],
    collection: Matcher | None,
    name: Matcher | None,
    unit: Matcher | None,
    tags: Mapping[str, Matcher | None] | None,
    annotations: Mapping[str, Any] | None,
) -> bool:
    """Apply every given criterion to one stream's metadata."""
    if collection is not None and not value_matches(collection_value, collection, ignore_case=True):
        return False
    if name is not None and not value_matches(tags_value.get("name"), name, ignore_case=True):
        return False
    if unit is not None and not value_matches(tags_value.get("unit"), unit, ignore_case=True):
        return False
    if tags is not None and not mapping_matches(tags_value, tags):
        return False
    return annotations is None or mapping_matches(annotations_value, annotations)
