"""Helpers for the protection tests: key rings, and the mapper's codec order on raw documents
(field codecs, then document codecs on write; the reverse on read) until the store runs them."""

from __future__ import annotations

from typing import Any, TypeVar

import tor_async_couchdb as tac
from tor_async_couchdb._protect import (
    DocumentContext,
    FieldContext,
    Key,
    KeyRing,
    Protection,
)

M = TypeVar("M", bound=tac.Model)


def secret(n: int) -> bytes:
    """A 32-byte test secret, distinct for each ``n`` (never a real key)."""
    return bytes([n]) * 32


def ring(active: str = "k1", *accepted: str, retired: tuple[str, ...] = ()) -> KeyRing:
    """A key ring whose key ``kN`` has the secret ``secret(N)``."""
    ids = (active, *accepted)
    return KeyRing([Key(i, secret(int(i[1:]))) for i in ids], active=active, retired=retired)


async def encode(protection: Protection, model: tac.Model) -> dict[str, Any]:
    """What a protected save would write for ``model`` (which must have its id)."""
    info = type(model).couch_info()
    doc = model.to_doc()
    assert model.id is not None
    for name, marker in type(model).field_markers():
        for codec in protection.field_codecs:
            if isinstance(marker, codec.marker_type) and name in doc:
                context = FieldContext(model.id, info.type_name, name, marker)
                doc[name] = await codec.encode(doc[name], context)
    for document_codec in protection.document_codecs:
        doc = document_codec.encode(doc, DocumentContext(model.id, info.type_name))
    return doc


def decode(protection: Protection, model: type[M], doc: dict[str, Any]) -> M:
    """What a protected read would make of the stored ``doc``."""
    info = model.couch_info()
    doc_id = doc["_id"]
    for document_codec in reversed(protection.document_codecs):
        doc = document_codec.decode(doc, DocumentContext(doc_id, info.type_name))
    for name, marker in model.field_markers():
        for codec in protection.field_codecs:
            if isinstance(marker, codec.marker_type) and name in doc:
                context = FieldContext(doc_id, info.type_name, name, marker)
                doc[name] = codec.decode(doc[name], context)
    return model.from_doc(doc)
