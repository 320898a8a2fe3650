"""The leaf hooks of a protected database: the store's codecs, run on leaves and resolutions.

A resolution of a signed database must be signed like any other write, its tombstones
included: a reader checks every revision it reads, and a server's signature guard
(``validate_doc_update``) refuses a non-admin's unsigned write, a tombstone as much as a body.
The codecs come from the same place as the store's (a :class:`~.._protect.Protection`, say),
so leaves are checked and decrypted exactly as the store reads them; what is written keeps the
stored (encrypted) values of the leaves and is only signed, by the document codecs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .._exceptions import WrongTypeError
from .._merge import LeafHooks
from .._models import DocumentCodec, DocumentContext, FieldCodec, Model, ModelSet
from .._store import Codec, Mapper

__all__ = ["protection_hooks"]


def protection_hooks(codecs: Iterable[Codec], models: ModelSet | type[Model]) -> LeafHooks:
    """The hooks that verify and decode every leaf with ``codecs`` (as the store's mapper
    does) and sign every document a resolution writes with their document codecs. Raises
    :class:`InvalidInputError` for an object that is no codec."""
    mapper = Mapper(codecs)
    # (As the mapper sorts them, which checked that each is one or the other: a field codec
    # also has a document codec's methods, so ``isinstance(codec, DocumentCodec)`` says little.)
    signers: list[DocumentCodec] = [
        codec for codec in mapper.codecs if not isinstance(codec, FieldCodec)
    ]

    def context(leaf: Mapping[str, Any]) -> DocumentContext:
        doc_id = str(leaf.get("_id", ""))
        model = _model_or_none(models, leaf)
        return DocumentContext(doc_id, model.couch_info().type_name if model else "")

    def verify(leaf: Mapping[str, Any]) -> None:
        doc = dict(leaf)
        for codec in reversed(signers):
            doc = codec.decode(doc, context(leaf))

    def decode(leaf: Mapping[str, Any]) -> Mapping[str, Any]:
        model = _model_or_none(models, leaf)
        # (A leaf of no known model is left to the merge, which reports it as such.)
        return mapper.decoded(model, leaf) if model is not None else leaf

    def sign(doc: dict[str, Any], leaf: Mapping[str, Any]) -> dict[str, Any]:
        signed = {**doc, "_id": leaf["_id"]}  # (a merged body has no _id yet: it is signed)
        for codec in signers:
            signed = codec.encode(signed, context(leaf))
        return signed

    return LeafHooks(verify=verify, decode=decode, sign=sign)


def _model_or_none(models: ModelSet | type[Model], doc: Mapping[str, Any]) -> type[Model] | None:
    if not isinstance(models, ModelSet):
        return models
    try:
        return models.model_for_type(doc.get("type"), doc_id=doc.get("_id"))
    except WrongTypeError:  # (unknown or unparsable type: the merge reports it)
        return None
