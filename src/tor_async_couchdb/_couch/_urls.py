"""Names and URLs of the CouchDB API: database names, document paths, query strings.

These are the checks made before any request: a name CouchDB would refuse never reaches it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from .._exceptions import InvalidNameError
from .._ids import _SPECIAL_PREFIXES
from .._json import dumps

__all__ = ["check_db_name", "design_name", "doc_path", "query_string", "quote_segment"]

# CouchDB 3's rule for database names, plus its system databases.
_DB_NAME = re.compile(r"[a-z][a-z0-9_$()+/-]*")
_SYSTEM_DBS = frozenset({"_users", "_replicator", "_global_changes"})
_MAX_DB_NAME = 238
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]+")


def check_db_name(name: object) -> str:
    """Return ``name`` if CouchDB accepts it as a database name, else raise InvalidNameError."""
    if not isinstance(name, str):
        raise InvalidNameError(f"a database name must be a str, not {type(name).__name__}")
    if name in _SYSTEM_DBS:
        return name
    if len(name) > _MAX_DB_NAME or not _DB_NAME.fullmatch(name):
        raise InvalidNameError(
            f"invalid database name {name!r}: it must start with a lower-case letter and hold "
            "only a-z, 0-9 and _ $ ( ) + - / (at most 238 characters)"
        )
    return name


def doc_path(doc_id: str) -> str:
    """The percent-encoded path segment(s) of a document id.

    Every character but unreserved ones is encoded (``/`` included), except the slash after a
    ``_design`` or ``_local`` prefix, which CouchDB expects literally.
    """
    if _UNRESERVED.fullmatch(doc_id):
        return doc_id
    for prefix in _SPECIAL_PREFIXES:
        if doc_id.startswith(prefix):
            return prefix + quote(doc_id[len(prefix) :], safe="")
    return quote(doc_id, safe="")


def _param(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    return str(value)


_JSON_PARAMS = frozenset(
    {"key", "keys", "startkey", "endkey", "start_key", "end_key", "doc_ids", "open_revs"}
)


def query_string(params: Mapping[str, Any]) -> str:
    """``?a=1&b=...`` from params (``None`` values left out; view keys JSON-encoded)."""
    parts = []
    for name, value in params.items():
        if value is None:
            continue
        if name in _JSON_PARAMS and not (name == "open_revs" and value == "all"):
            text = dumps(value, what=f"parameter {name!r}").decode()
        else:
            text = _param(value)
        parts.append(f"{name}={quote(text, safe='')}")
    return "?" + "&".join(parts) if parts else ""


def quote_segment(name: str) -> str:
    """``name`` as one percent-encoded path segment (``/`` encoded too)."""
    return quote(name, safe="")


def design_name(design: str) -> str:
    """A design document's name, percent-encoded, with or without its ``_design/`` prefix."""
    return quote_segment(design.removeprefix("_design/"))
