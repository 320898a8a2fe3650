"""The canonical JSON form of a merged document: the same bytes wherever it is computed.

Why it matters: CouchDB derives a new revision id from the body as it decoded it (key order
included; pouchdb-server hashes ``JSON.stringify`` of it), so two data centers that write the
same merge as a child of the same parent get the same revision, and replication then finds
nothing to conflict about, only when they send the same bytes.

The form: object keys sorted by code point at every level; integers as integers; a float with
an integral value of magnitude below 2**53 written as that integer (``1.0`` -> ``1``, ``-0.0``
-> ``0``: JavaScript and Erlang peers may otherwise print it either way); other floats in the
shortest form that reads back as the same float. Lists keep their order (order is data).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import orjson

__all__ = ["canonical_bytes", "canonical_doc", "canonical_value"]

_SAFE_INTEGER: Final = 2.0**53


def canonical_value(value: Any) -> Any:
    """Return ``value`` with its numbers in the canonical form (keys are sorted on encoding)."""
    kind = type(value)
    if kind is float:
        if math.isfinite(value) and value.is_integer() and abs(value) < _SAFE_INTEGER:
            return int(value)
        return value
    if kind is dict or isinstance(value, Mapping):
        return {key: canonical_value(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [canonical_value(item) for item in value]
    return value


def canonical_bytes(value: Any) -> bytes:
    """The canonical JSON bytes of ``value``. Raises :class:`TypeError` for non-JSON values."""
    return orjson.dumps(canonical_value(value), option=orjson.OPT_SORT_KEYS)


def canonical_doc(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``doc`` whose keys are in canonical order at every level, so that encoding it
    in insertion order (as the client does) gives :func:`canonical_bytes`."""
    result: dict[str, Any] = orjson.loads(canonical_bytes(doc))
    return result
