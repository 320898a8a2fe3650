"""The models layer: typed documents, markers, ids, view generation, the save lane, and the codec
protocol. Pure: no I/O (the store does the reading and writing)."""

from .._ids import IdGenerator, check_doc_id, id_timestamp, new_id
from ._codecs import DocumentCodec, DocumentContext, FieldCodec, FieldContext
from ._model import (
    WRITE_STAMP,
    FieldMarker,
    Index,
    Indexed,
    Model,
    ModelInfo,
    ModelSet,
    UpgradeStep,
    current_models,
    format_type,
    parse_type,
    upgrade,
)
from ._values import stored_value
from ._views import design_doc, design_docs, view_location

__all__ = [
    "DocumentCodec",
    "DocumentContext",
    "FieldCodec",
    "FieldContext",
    "FieldMarker",
    "IdGenerator",
    "Index",
    "Indexed",
    "Model",
    "ModelInfo",
    "ModelSet",
    "UpgradeStep",
    "WRITE_STAMP",
    "check_doc_id",
    "current_models",
    "design_doc",
    "design_docs",
    "format_type",
    "id_timestamp",
    "new_id",
    "parse_type",
    "stored_value",
    "upgrade",
    "view_location",
]
