"""The mapper: the only code that turns documents into models and models into documents.

Every read and write path of the store (get, get_many, query, find, all, most_recent, save,
save_many, update, delete, tombstone, migrate) goes through one :class:`Mapper`, which runs the
codecs it was given (see :mod:`tor_async_couchdb._models._codecs` for the protocol):

- writing, :meth:`Mapper.document`: the model is validated again (the save lane of simple
  models, else pydantic), given its final id (made here and nowhere else), then field codecs
  and document codecs encode the document;
- reading, :meth:`Mapper.model`: document codecs decode (in reverse order), then field codecs,
  then the model validates the document, upgrading an older version.

Without codecs both are what the models layer does alone, at no extra cost.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from operator import attrgetter, setitem
from typing import Any, TypeVar, cast

from .._exceptions import ConfigurationError, InvalidInputError
from .._ids import new_id
from .._models import (
    WRITE_STAMP,
    DocumentCodec,
    DocumentContext,
    FieldCodec,
    FieldContext,
    FieldMarker,
    Model,
    current_models,
)
from .._protect import check_model
from ._merging import Merging

__all__ = ["Codec", "Mapper", "checked_doc", "checked_docs", "with_rev", "with_revs"]

M = TypeVar("M", bound=Model)
Codec = FieldCodec | DocumentCodec
# (codec, field name, marker) for each marked field a field codec encodes, per model class.
_FieldPlan = tuple[tuple[FieldCodec, str, FieldMarker], ...]


def checked_doc(instance: Model, **overrides: str | None) -> tuple[dict[str, Any], Model]:
    """The model validated again, with its final id (a new one if it has none), and its
    document; ``overrides`` replace field values first (``id`` and ``rev`` for an update).

    Models are validated when built and on assignment, but ``model_construct`` and in-place
    changes of mutable values (``fruit.tags.append(3)``) skip that: validating once more here
    keeps a bad value from being written, before any request.
    """
    if overrides.get("id", instance.id) is None:
        overrides["id"] = new_id()  # the one place ids of new documents are made
    model = type(instance)
    fast = model.__couch_fast__  # the plain-Python lane of simple models (_models/_fastlane)
    if fast is not None:
        found = fast.checked(instance.__dict__, overrides)
        if found is not None:
            return found[0], cast("Model", found[1])
    values = dict(instance.__dict__)
    if values.keys() != model.model_fields.keys():
        # Not just the fields: a cached computed field, or some missing (model_construct).
        # (A field missing from a model_construct is left out: validation then names it.)
        values = {
            name: instance.__dict__[name]
            for name in model.model_fields
            if name in instance.__dict__
        }
        values.setdefault("id", None)
    values.update(overrides)
    checked = model.model_validate(values)
    return checked.to_doc(), checked


def checked_docs(instances: Sequence[M]) -> list[tuple[dict[str, Any], M]]:
    """:func:`checked_doc` of every model, in order (new ids made here too, in order).

    Models of one class that has a save lane are checked as one batch
    (:meth:`~tor_async_couchdb._models._fastlane.Plan.checked_batch`, a field of every model at
    a time), which writes what :func:`checked_doc` of each would, in a fraction of the time;
    whatever the batch leaves is checked one model at a time.
    """
    if not instances:
        return []
    model = type(instances[0])
    fast = model.__couch_fast__
    if fast is None or set(map(type, instances)) != {model}:
        return [cast("tuple[dict[str, Any], M]", checked_doc(m)) for m in instances]
    values = [instance.__dict__ for instance in instances]
    given = [value.get("id") for value in values]
    ids = [new_id() if doc_id is None else doc_id for doc_id in given]  # new ids: made here
    found = fast.checked_batch(values, ids)
    if found is not None:
        return cast("list[tuple[dict[str, Any], M]]", found)
    return [
        cast(
            "tuple[dict[str, Any], M]",
            checked_doc(m) if doc_id is not None else checked_doc(m, id=new),
        )
        for m, doc_id, new in zip(instances, given, ids, strict=True)
    ]


def with_rev(checked: M, rev: str) -> M:
    """``checked``, a model :func:`checked_doc` made, given the rev its document was saved with.

    ``checked`` is the store's own copy, just validated and never handed out before: setting
    the rev on it directly (a revision string needs no validation) spares a copy and a
    validated assignment on every save.
    """
    checked.__dict__["rev"] = rev
    checked.__pydantic_fields_set__.add("rev")
    return checked


def with_revs(checked: Sequence[M], revs: Sequence[str]) -> None:
    """:func:`with_rev` of each of ``checked`` (models :func:`checked_docs` made) and its rev,
    in C: a bulk write sets a thousand."""
    deque(map(setitem, map(_values_of, checked), repeat("rev"), revs), maxlen=0)
    deque(map(set.add, map(_fields_set_of, checked), repeat("rev")), maxlen=0)


_values_of = attrgetter("__dict__")
_fields_set_of = attrgetter("__pydantic_fields_set__")


class Mapper:
    """Documents to models and back, through ``codecs`` (field and document codecs, in the
    order they apply on a write); ``merging`` seals mergeable models before they are written
    (:mod:`._merging`). Immutable; one per database handle."""

    __slots__ = (
        "_codecs",
        "_decode_copies",
        "_document_codecs",
        "_field_codecs",
        "_merging",
        "_plans",
        "_type_names",
    )

    def __init__(self, codecs: Iterable[Codec] = (), *, merging: Merging | None = None) -> None:
        self._merging = merging if merging is not None else Merging()
        self._codecs: tuple[Codec, ...] = tuple(codecs)
        fields: list[FieldCodec] = []
        documents: list[DocumentCodec] = []
        for codec in self._codecs:
            if isinstance(codec, FieldCodec):
                fields.append(codec)
            elif isinstance(codec, DocumentCodec):
                documents.append(codec)
            else:
                raise InvalidInputError(
                    f"{codec!r} is neither a FieldCodec (marker_type, encode, decode, "
                    "index_keys) nor a DocumentCodec (encode, decode)"
                )
        self._field_codecs = tuple(fields)
        self._document_codecs = tuple(documents)
        self._plans: dict[type[Model], _FieldPlan] = {}
        self._type_names: dict[type[Model], str] = {}
        # Whether the last document codec to decode (the first on a write) hands back a new
        # dict and leaves the one it is given alone (``decodes_to_copy``, as the signature
        # codec does): then the stored document need not be copied first, the codecs' copy is
        # the mapper's own.
        self._decode_copies = bool(documents) and getattr(documents[-1], "decodes_to_copy", False)

    def __repr__(self) -> str:
        return f"Mapper(codecs={list(self._codecs)!r})"

    @property
    def codecs(self) -> tuple[Codec, ...]:
        """The codecs, in the order they apply on a write."""
        return self._codecs

    @property
    def merging(self) -> Merging:
        """How mergeable models are sealed (the writer's clock)."""
        return self._merging

    # -- reading -----------------------------------------------------------------------------

    def model(self, model: type[M], doc: Mapping[str, Any]) -> M:
        """Read a stored document as ``model``: codecs decode, then the model validates
        (upgrading an older version). Raises what :meth:`Model.from_doc` and the codecs raise.
        """
        if not self._codecs:
            self._plan(model)  # (once per model: refuses an Encrypted() field, say)
            return model.from_doc(doc)
        return model.from_doc(self._decoded(model, doc))

    def models(self, model: type[M], docs: Sequence[Mapping[str, Any]]) -> list[M]:
        """:meth:`model` of every document, in order."""
        if not self._codecs:
            self._plan(model)
            from_doc = model.from_doc
            return [from_doc(doc) for doc in docs]
        return [model.from_doc(self._decoded(model, doc)) for doc in docs]

    def page_models(self, model: type[M], docs: Sequence[Mapping[str, Any]]) -> list[M] | None:
        """:meth:`models` of a page of documents in one validation
        (:func:`~tor_async_couchdb._models._model.current_models`), or None: then
        :meth:`model` of each decides (with codecs, always: each document is decoded on
        its own)."""
        if self._codecs:
            return None
        return current_models(model, docs)

    def decoded(self, model: type[Model], doc: Mapping[str, Any]) -> dict[str, Any]:
        """``doc`` decoded by the codecs (signatures checked, values decrypted), not yet
        validated as ``model``. Raises what the codecs raise."""
        return self._decoded(model, doc) if self._codecs else dict(doc)

    def _decoded(self, model: type[Model], doc: Mapping[str, Any]) -> dict[str, Any]:
        plan = self._plan(model)  # (first: the model's markers are checked before any decode)
        type_name = self._type_names.get(model) or self._type_name(model)
        # A codec that decodes to a copy of its own is given the stored document itself.
        decoded = cast("dict[str, Any]", doc) if self._decode_copies else dict(doc)
        doc_id = str(decoded.get("_id", ""))
        context = DocumentContext(doc_id, type_name)
        for codec in reversed(self._document_codecs):
            decoded = codec.decode(decoded, context)
        for field_codec, field, marker in plan:
            if field in decoded:
                where = FieldContext(doc_id, type_name, field, marker)
                decoded[field] = field_codec.decode(decoded[field], where)
        return decoded

    # -- writing -----------------------------------------------------------------------------

    async def document(
        self,
        instance: M,
        overrides: Mapping[str, str | None] | None = None,
        *,
        stamp: bool = False,
    ) -> tuple[dict[str, Any], M]:
        """The document to write for ``instance`` (``overrides``: ``id``, ``rev``) and the
        validated model to hand back once it is saved; with ``stamp``, the document carries a
        new write stamp (:data:`WRITE_STAMP`, for writes to a cluster). Raises
        :class:`ModelValidationError`, :class:`NotJSONError` and what the codecs raise, before
        anything is written."""
        self._plan(type(instance))  # (first: a marker this mapper has no codec for is refused)
        doc, checked = checked_doc(instance, **(overrides or {}))
        if stamp:
            doc[WRITE_STAMP] = new_id()
        if self._codecs:
            doc, checked = await self._encoded(doc, checked)
        return doc, cast("M", checked)

    async def documents(
        self, instances: Sequence[M], *, stamp: bool = False
    ) -> list[tuple[dict[str, Any], M]]:
        """:meth:`document` of every model, in order: all checked before the caller writes."""
        for model in {type(instance) for instance in instances}:
            self._plan(model)  # (first: a marker this mapper has no codec for is refused)
        checked = checked_docs(instances)
        if stamp:
            for doc, _ in checked:
                doc[WRITE_STAMP] = new_id()
        if not self._codecs:
            return checked
        encoded = [await self._encoded(doc, model) for doc, model in checked]
        return cast("list[tuple[dict[str, Any], M]]", encoded)

    async def _encoded(self, doc: dict[str, Any], checked: Model) -> tuple[dict[str, Any], Model]:
        model = type(checked)
        doc_id = str(doc["_id"])
        type_name = self._type_names.get(model) or self._type_name(model)
        changed: dict[str, Any] = {}
        for codec, field, marker in self._plan(model):
            if field not in doc:
                continue
            where = FieldContext(doc_id, type_name, field, marker)
            plain = doc[field]
            doc[field] = await codec.encode(plain, where)
            if getattr(codec, "keeps_value", False):
                continue  # its decode gives the plain value back (a cipher): no decrypt
            # What the saved model holds: the stored value decoded (a hash stays a hash, a
            # ciphertext becomes its plaintext again).
            held = codec.decode(doc[field], where)
            if held != plain:
                changed[field] = held
        if changed:
            fields = {name: checked.__dict__[name] for name in model.model_fields}
            checked = model.model_validate({**fields, **changed})
        context = DocumentContext(doc_id, type_name)
        for document_codec in self._document_codecs:
            doc = document_codec.encode(doc, context)
        return doc, checked

    def deletion(self, model: type[Model], doc_id: str, rev: str) -> dict[str, Any]:
        """The deletion of ``doc_id`` at ``rev``, a document of ``model``: a stub with its
        ``type`` (so that a document codec can bind a signature to the type and to
        ``_deleted``), through the document codecs."""
        info = model.couch_info()
        doc: dict[str, Any] = {
            "_id": doc_id,
            "_rev": rev,
            "_deleted": True,
            "type": info.type_string,
        }
        context = DocumentContext(doc_id, info.type_name)
        for codec in self._document_codecs:
            doc = codec.encode(doc, context)
        return doc

    # -- queries -----------------------------------------------------------------------------

    def index_keys(self, model: type[Model], field: str, stored: Any) -> list[Any]:
        """The view keys under which ``stored`` (a value of ``field`` in its stored form) is
        indexed: ``[stored]`` unless a field codec indexes the field otherwise (a blind
        index, one key per live key during a rotation)."""
        type_name = model.couch_info().type_name
        for codec, name, marker in self._plan(model):
            if name == field:
                keys = codec.index_keys(stored, FieldContext("", type_name, field, marker))
                if keys is not None:
                    return list(keys)
        return [stored]

    def encodes_index(self, model: type[Model], field: str) -> bool:
        """Whether a field codec may index ``field`` under keys of its own."""
        return any(name == field for _, name, _ in self._plan(model))

    def _type_name(self, model: type[Model]) -> str:
        type_name = self._type_names[model] = model.couch_info().type_name
        return type_name

    def _plan(self, model: type[Model]) -> _FieldPlan:
        plan = self._plans.get(model)
        if plan is None:
            # First use of the model through this mapper: markers a field cannot carry
            # (Encrypted() on a password, Hashed() on a str), or that no codec here applies,
            # are refused before anything is read or written.
            check_model(model)
            plan = tuple(
                (codec, field, marker)
                for codec in self._field_codecs
                for field, marker in model.field_markers(codec.marker_type)
            )
            self._refuse_uncoded(model, plan)
            self._plans[model] = plan
        return plan

    def _refuse_uncoded(self, model: type[Model], plan: _FieldPlan) -> None:
        # Without its codec an Encrypted() field would be written in plaintext.
        coded = {(field, id(marker)) for _, field, marker in plan}
        for field, marker in model.field_markers():
            if type(marker).needs_codec and (field, id(marker)) not in coded:
                raise ConfigurationError(
                    f"{model.__qualname__}.{field} carries {marker!r}, which no codec of this "
                    f"client or database handle applies ({type(marker).__name__} needs one: "
                    "pass codecs=tac.Protection.from_keyring(ring), or a codec whose "
                    "marker_type it is): refused, so that it is never stored as it is"
                )
