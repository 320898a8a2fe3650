"""Design documents generated from models: one design document per view.

Each model gets a view ``<type_name>_all`` keyed by document id (ids from :func:`new_id` sort by
creation time, so this walks a model's documents oldest first), and one view
``<type_name>_by_<index>`` per index. Each view lives alone in ``_design/<view name>``: CouchDB
builds every view of a design document together, so one view per design document lets a new or
changed index be built without rebuilding the others.

The map functions:

- keep only documents of the model's type, of *any* version (``/^fruit_v[0-9]+\\.[0-9]+$/``), so
  that documents written before an upgrade still show up;
- leave out a document that lacks a key field (an older version without the field), so it does
  not pollute the index; a ``null`` value is indexed. "Lacks" means no own property: a field
  called ``constructor`` must not find ``Object.prototype.constructor``;
- emit the field's value as key, or the list of values for a compound index;
- emit ``null`` as value, so the index holds no copies of documents (the store reads with
  ``include_docs=true``), except for a tombstoned document, whose value is ``true``.

Why tombstoned documents stay in the views: in the never-delete style a tombstone is often the
newest state of a thing, and a "most recent" query (descending, ``limit=1``) must find it rather
than the older live document behind it. The value flag lets the store drop tombstoned rows by
default without reading their documents, and one index per view stays one index (a second view
of live documents only would double the index work of every write).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from .._exceptions import UnknownIndexError
from ._model import Index, Model, ModelInfo, ModelSet

__all__ = [
    "design_doc",
    "design_docs",
    "map_function",
    "view_location",
    "view_members",
]

_DESIGN_PREFIX: Final = "_design/"
_VALUE: Final = "doc.tombstone === true ? true : null"


def _js_string(text: str) -> str:
    # ASCII-only JSON is a valid JavaScript string literal, whatever the engine's version.
    return json.dumps(text, ensure_ascii=True)


def map_function(
    info: ModelInfo, index: Index | None = None, members: Mapping[str, str] | None = None
) -> str:
    """Return the JavaScript map function of ``index``, or of the ``_all`` view if ``None``.

    ``members`` maps an indexed field whose stored value is an envelope (an encrypted field
    with a blind index) to the member of it the view emits instead (``"bi"``): the view then
    holds that member only, never the stored object, and leaves out a value that is no such
    envelope (a plaintext written around the library is not indexed)."""
    if index is not None and members and index.fields[0] in members and len(index.fields) == 1:
        return _member_map_function(info, index.fields[0], members[index.fields[0]])
    lines = [
        "function (doc) {",
        f'  if (typeof doc.type !== "string" || !/^{info.type_name}_v[0-9]+\\.[0-9]+$/'
        ".test(doc.type)) return;",
    ]
    if index is None:
        lines.append(f"  emit(doc._id, {_VALUE});")
    elif len(index.fields) == 1:
        field = _js_string(index.fields[0])
        lines += [
            f"  if (!Object.prototype.hasOwnProperty.call(doc, {field})) return;",
            f"  emit(doc[{field}], {_VALUE});",
        ]
    else:
        fields = ", ".join(_js_string(field) for field in index.fields)
        lines += [
            f"  var fields = [{fields}], key = [];",
            "  for (var i = 0; i < fields.length; i++) {",
            "    if (!Object.prototype.hasOwnProperty.call(doc, fields[i])) return;",
            "    key.push(doc[fields[i]]);",
            "  }",
            f"  emit(key, {_VALUE});",
        ]
    lines.append("}")
    return "\n".join(lines)


def _member_map_function(info: ModelInfo, field: str, member: str) -> str:
    name, part = _js_string(field), _js_string(member)
    return "\n".join(
        [
            "function (doc) {",
            f'  if (typeof doc.type !== "string" || !/^{info.type_name}_v[0-9]+\\.[0-9]+$/'
            ".test(doc.type)) return;",
            f"  if (!Object.prototype.hasOwnProperty.call(doc, {name})) return;",
            f"  var value = doc[{name}];",
            '  if (value === null || typeof value !== "object" ||',
            f'      typeof value[{part}] !== "string") return;',
            f"  emit(value[{part}], {_VALUE});",
            "}",
        ]
    )


def view_members(model: type[Model]) -> dict[str, str]:
    """The indexed fields of ``model`` whose views emit a member of the stored value (the
    blind index ``"bi"`` of an ``Encrypted(blind_index=True)`` field), from the markers'
    ``view_member``."""
    members: dict[str, str] = {}
    for field, marker in model.field_markers():
        member = getattr(marker, "view_member", None)
        if isinstance(member, str):
            members[field] = member
    return members


def _find_index(model: type[Model], index: Index | str | None) -> Index | None:
    if index is None or isinstance(index, Index):
        if index is not None and index not in model.couch_info().indexes:
            raise UnknownIndexError(f"{model.__qualname__} has no index {index.name!r}")
        return index
    return model.couch_info().index(index)


def view_location(model: type[Model], index: Index | str | None = None) -> tuple[str, str]:
    """Return ``(design document id, view name)`` of a model's index (by name or
    :class:`Index`), or of its ``_all`` view if ``index`` is ``None``.

    Raises :class:`UnknownIndexError` (a :class:`KeyError`) for an index the model does not have and
    :class:`ModelDefinitionError` for an abstract model.
    """
    found = _find_index(model, index)
    view = model.couch_info().all_view if found is None else found.view_name
    return _DESIGN_PREFIX + view, view


def design_doc(model: type[Model], index: Index | str | None = None) -> dict[str, Any]:
    """Return the design document holding one view of ``model`` (see :func:`view_location`).

    Raises what :func:`view_location` raises.
    """
    found = _find_index(model, index)
    ddoc_id, view = view_location(model, found)
    return {
        "_id": ddoc_id,
        "language": "javascript",
        "views": {view: {"map": map_function(model.couch_info(), found, view_members(model))}},
    }


def design_docs(models: Iterable[type[Model]]) -> list[dict[str, Any]]:
    """Return every design document of ``models`` (a :class:`ModelSet` or any iterable of model
    classes), sorted by id.

    Raises :class:`ModelDefinitionError` for an abstract model or two models claiming one type
    name or view name.
    """
    model_set = models if isinstance(models, ModelSet) else ModelSet(*models)
    docs = [
        design_doc(model, index)
        for model in model_set
        for index in (None, *model.couch_info().indexes)
    ]
    return sorted(docs, key=lambda doc: str(doc["_id"]))
