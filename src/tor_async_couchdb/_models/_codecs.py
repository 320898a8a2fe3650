"""The codec protocol: the mapper's point of extension for per-field and per-document encodings.

A codec turns a model's stored form into what is written, and back, at one place: the store's
mapper, on every read and write path. Two kinds, both small objects handed to the client (or a
database handle) in an ordered list, holding whatever keys they need (never a global):

- a :class:`FieldCodec` encodes the value of every field that carries a marker of its
  ``marker_type`` (hashing, encryption);
- a :class:`DocumentCodec` encodes the whole document (a signature).

On a write, field codecs run first, in list order, on the model's JSON-ready document (the
final ``_id`` assigned, so that a codec can bind to it); document codecs then run on the result,
in list order. On a read, document codecs run first, in reverse order (a signature is checked
over what was stored), then field codecs, then the model validates the decoded document. A codec
signals bad stored data by raising an error of the library's tree (for example
:class:`InvalidInputError`); the mapper lets it through.

Models whose fields carry a marker the save lane does not know always take the pydantic path, so
a codec's field is never written by the lane; document codecs run after the lane, so a signed
model keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ._model import FieldMarker

__all__ = ["DocumentCodec", "DocumentContext", "FieldCodec", "FieldContext"]


@dataclass(frozen=True, slots=True)
class FieldContext:
    """Where a field value is being encoded or decoded.

    ``doc_id`` is the document's final id; ``type_name`` the model's type name without its
    version (``"fruit"``: an upgrade keeps what it binds to); ``path`` the field's key in the
    document; ``marker`` the marker instance on the field.
    """

    doc_id: str
    type_name: str
    path: str
    marker: FieldMarker


@dataclass(frozen=True, slots=True)
class DocumentContext:
    """Which document is being encoded or decoded: its id and type name (without version)."""

    doc_id: str
    type_name: str


@runtime_checkable
class FieldCodec(Protocol):
    """Encodes the stored value of every field that carries a marker of ``marker_type``."""

    @property
    def marker_type(self) -> type[FieldMarker]:
        """The marker class whose fields this codec encodes (a class attribute will do)."""
        ...

    async def encode(self, value: Any, context: FieldContext) -> Any:
        """The JSON value to store for ``value``, the field's JSON-ready stored form. A
        coroutine, so that slow work (a password hash) can run off the event loop."""
        ...

    def decode(self, stored: Any, context: FieldContext) -> Any:
        """The JSON-ready value the model validates, from the ``stored`` value as read."""
        ...

    def index_keys(self, value: Any, context: FieldContext) -> list[Any] | None:
        """The view keys under which the JSON-ready ``value`` is found in the field's index
        (several during a key rotation), or None where the index holds the stored value."""
        ...


@runtime_checkable
class DocumentCodec(Protocol):
    """Encodes a whole document after the field codecs, and decodes it before them."""

    def encode(self, doc: dict[str, Any], context: DocumentContext) -> dict[str, Any]:
        """The document to write, from ``doc`` (``_id``, ``type``, maybe ``_rev``)."""
        ...

    def decode(self, doc: dict[str, Any], context: DocumentContext) -> dict[str, Any]:
        """The document the field codecs and the model read, from ``doc`` as stored."""
        ...
