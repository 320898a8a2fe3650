"""The codec seam between the mapper and the protection codecs (a copy of the mapper's
protocols, to be unified with them at merge time).

Encode order in the mapper: field codecs (in list order), then document codecs; decode: document
codecs (in reverse order), then field codecs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .._model import FieldMarker

__all__ = ["DocumentCodec", "DocumentContext", "FieldCodec", "FieldContext"]


@dataclass(frozen=True, slots=True)
class FieldContext:
    """Where a field value lives: its document's final id, its model's type name (without the
    version), its key in the document and the marker on the field."""

    doc_id: str
    type_name: str
    path: str
    marker: FieldMarker


class FieldCodec(Protocol):
    """Turns one marked field's JSON-mode value into its stored form and back."""

    @property
    def marker_type(self) -> type[FieldMarker]:
        """The codec applies to fields carrying a marker of this type."""
        ...

    async def encode(self, value: Any, context: FieldContext) -> Any:
        """The field's JSON-mode value (as ``Model.to_doc`` wrote it) -> the value to store."""
        ...

    def decode(self, stored: Any, context: FieldContext) -> Any:
        """The stored value as read -> the JSON-mode value the model then validates."""
        ...

    def index_keys(self, value: Any, context: FieldContext) -> list[Any] | None:
        """The view keys to look ``value`` up by (one per live key), or ``None`` when the view
        is keyed by the stored value itself."""
        ...


@dataclass(frozen=True, slots=True)
class DocumentContext:
    """The document being encoded or decoded: its id and its model's type name."""

    doc_id: str
    type_name: str


class DocumentCodec(Protocol):
    """Runs on the whole document, after the field codecs on write and before them on read."""

    def encode(self, doc: dict[str, Any], context: DocumentContext) -> dict[str, Any]:
        """The document to write (``_id``, ``type``, maybe ``_rev``/``_deleted``/...)."""
        ...

    def decode(self, doc: dict[str, Any], context: DocumentContext) -> dict[str, Any]:
        """Verify (raise :class:`TamperedDocument`) and return the document without the
        codec's own members."""
        ...
