"""Attachments in a signed document: what the signature covers of each, and the SHA-256 of the
content where it is known (see :mod:`._signing`)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from .._exceptions import MalformedEnvelope, TamperedDocument

__all__ = ["attachment_entries", "attachment_hashes", "check_inline_contents"]


def attachment_entries(doc_id: str | None, attachments: object) -> dict[str, Any]:
    if not isinstance(attachments, dict):
        raise _malformed(doc_id, "has _attachments that are not an object")
    return {name: _attachment_entry(doc_id, name, att) for name, att in attachments.items()}


def _attachment_entry(doc_id: str | None, name: str, att: object) -> dict[str, Any]:
    if not isinstance(att, dict):
        raise _malformed(doc_id, f"has attachment {name!r} that is not an object")
    # Not CouchDB's digest: CouchDB 3 computes it over the bytes it stores, gzipped for
    # compressible types (text/*, JSON...), which a writer cannot know in advance. The content
    # itself is covered by its SHA-256 (attachment_hashes), checked when it is read.
    content_type = att.get("content_type")
    if "data" in att:
        length: object = len(_inline_data(doc_id, name, att["data"]))
    elif att.get("stub") is True:
        length = att.get("length")
    else:
        raise _malformed(doc_id, f"has attachment {name!r} neither inline nor a stub")
    return {"content_type": content_type, "length": length}


def _inline_data(doc_id: str | None, name: str, data: object) -> bytes:
    try:
        if isinstance(data, str):
            return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        pass
    raise _malformed(doc_id, f"has attachment {name!r} whose data is not base64")


def attachment_hashes(
    doc_id: str | None, attachments: object, known: Mapping[str, str]
) -> dict[str, str]:
    if attachments is None:
        return {}
    if not isinstance(attachments, dict):
        raise _malformed(doc_id, "has _attachments that are not an object")
    hashes: dict[str, str] = {}
    for name, att in attachments.items():
        if isinstance(att, dict) and "data" in att:
            hashes[name] = hashlib.sha256(_inline_data(doc_id, name, att["data"])).hexdigest()
        elif name in known:
            hashes[name] = known[name]
    return hashes


def check_inline_contents(doc_id: str | None, attachments: object, att: Mapping[str, str]) -> None:
    # Inline data is checked against the signed SHA-256 of its content.
    if not isinstance(attachments, dict):
        return
    for name, entry in attachments.items():
        expected = att.get(name)
        if expected is not None and isinstance(entry, dict) and "data" in entry:
            found = hashlib.sha256(_inline_data(doc_id, name, entry["data"])).hexdigest()
            if not hmac.compare_digest(found, expected):
                raise _tampered(doc_id, f"attachment {name!r} is not the signed content")


def _tampered(doc_id: str | None, problem: str) -> TamperedDocument:
    return TamperedDocument(f"document {doc_id!r} {problem}", doc_id=doc_id)


def _malformed(doc_id: str | None, problem: str) -> MalformedEnvelope:
    return MalformedEnvelope(f"document {doc_id!r}: the signature {problem}", doc_id=doc_id)
