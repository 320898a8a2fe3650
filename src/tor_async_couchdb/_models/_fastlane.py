"""A plain-Python lane for writing models whose fields are all simple types.

Why it exists: saving a model must cost at most 1.25x the client CPU of the core's raw
``put_doc`` (issue 4). Before each save the store validates the model again (an in-place change
may have made it invalid) and dumps it: a pydantic validation, a pydantic serialization and a
walk of the result to write datetimes in their stored form. ``bench/models.py`` measured that
save at 1.6-1.7x the core. For a model whose fields are simple types, checking each value's
exact type and writing its JSON form in a few lines of Python does the same work in half the
time (3.3 µs against 6.5 µs per save of the benchmark's model, measured with ``timeit``), which
takes the save from about 1.7x to about 1.35x the core (``bench/RESULTS.md``: short of the
target). Reading needs no such lane: pydantic validates a document in less time than this
module could (a plain-Python reader was tried: 2.8 µs against pydantic's 1.8 µs).

What it covers: models with pydantic's default behaviour and no code of their own in the way
(:func:`build_plan` says exactly which), whose fields are ``str``, ``int``, ``float``, ``bool``,
``Decimal``, ``datetime``, an ``Enum`` of ``str`` or ``int`` values, ``X | None`` of those, and
``list[X]`` or ``dict[str, X]`` of those. Every value is checked by its exact type (a ``bool``
is not an ``int``, a ``str`` subclass is not a ``str``, a naive datetime is refused); anything
else makes the lane answer ``None`` and the caller take the pydantic path. So the lane never
decides an error and never lets through what pydantic would refuse; for what it takes, it writes
what the pydantic path writes (the tests compare both lanes value by value and type by type).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum, Flag
from itertools import chain, repeat
from operator import attrgetter, is_, itemgetter, methodcaller, setitem
from types import UnionType
from typing import Any, Final, Union, get_args, get_origin

from pydantic import BaseModel

from .._ids import is_valid_doc_id
from .._json import format_utc

__all__ = ["Plan", "build_plan"]

# What a converter returns for a value it does not take: the caller then falls back.
_MISS: Final[Any] = object()
# A converter: model value -> JSON value, or _MISS.
_Dump = Callable[[Any], Any]
# The methods by which the pydantic path of a save reads or writes a model: a model class that
# has its own gets no plan (the lane would bypass it).
_PATH_METHODS: Final = ("__new__", "model_validate", "to_doc", "_json_fields")

# A model's __dict__ is set as pydantic sets it; its other three slots through their slot
# descriptors, which is faster than object.__setattr__ (that looks them up first).
_set_attribute: Final = object.__setattr__
_set_fields_set: Final = vars(BaseModel)["__pydantic_fields_set__"].__set__
_set_extra: Final = vars(BaseModel)["__pydantic_extra__"].__set__
_set_private: Final = vars(BaseModel)["__pydantic_private__"].__set__


# --- converters ------------------------------------------------------------------------------


def _float(value: Any) -> Any:
    return value if type(value) is float and math.isfinite(value) else _MISS


def _decimal(value: Any) -> Any:
    return str(value) if type(value) is Decimal and value.is_finite() else _MISS


def _datetime(value: Any) -> Any:
    if type(value) is datetime and value.utcoffset() is not None:
        return format_utc(value)
    return _MISS


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


# --- column converters, for batches ----------------------------------------------------------
#
# A batch (save_many) is checked and written field by field: one column holds the values of one
# field in every model, and each check or conversion is a single pass over it in C (``map``,
# ``set``), where a model at a time costs a Python call per value. A column converter returns
# the column's JSON values, or _MISS if any value is not one the lane takes: the batch is then
# left to the lane of one model at a time, which decides value by value.
_Column = Callable[[Sequence[Any]], Any]
_NONE_TYPE: Final = type(None)
_is_finite_decimal: Final = Decimal.is_finite
_utcoffset: Final = datetime.utcoffset
_tzinfo: Final = attrgetter("tzinfo")
_UTC_OFFSET: Final = repeat("+00:00")
_Z: Final = repeat("Z")
_iso_microseconds: Final = methodcaller("isoformat", "T", "microseconds")
_enum_value: Final = attrgetter("_value_")  # what Enum.value reads, without its descriptor


def _types(column: Sequence[Any]) -> set[type]:
    return set(map(type, column))


def _exact_column(exact: type) -> _Column:
    def convert(column: Sequence[Any]) -> Any:
        return column if _types(column) <= {exact} else _MISS

    return convert


def _float_column(column: Sequence[Any]) -> Any:
    return column if _types(column) <= {float} and all(map(math.isfinite, column)) else _MISS


def _decimal_column(column: Sequence[Any]) -> Any:
    if _types(column) <= {Decimal} and all(map(_is_finite_decimal, column)):
        return list(map(str, column))
    return _MISS


def _datetime_column(column: Sequence[Any]) -> Any:
    if not _types(column) <= {datetime} or None in map(_utcoffset, column):
        return _MISS  # (naive datetimes: their utcoffset() is None)
    if all(map(is_, map(_tzinfo, column), repeat(UTC))):
        # All in UTC: format_utc's form, written by datetime's own isoformat in C.
        # ("+00:00" can only be the offset: the rest is digits and "-T:.")
        return list(map(str.replace, map(_iso_microseconds, column), _UTC_OFFSET, _Z))
    return list(map(format_utc, column))


def _enum_column(enum: type[Enum]) -> _Column:
    def convert(column: Sequence[Any]) -> Any:
        return list(map(_enum_value, column)) if _types(column) <= {enum} else _MISS

    return convert


def _list_of_exact_column(exact: type) -> _Column:
    def convert(column: Sequence[Any]) -> Any:
        if _types(column) <= {list} and _types(list(chain.from_iterable(column))) <= {exact}:
            return list(map(list.copy, column))
        return _MISS

    return convert


def _optional_exact_column(exact: type) -> _Column:
    def convert(column: Sequence[Any]) -> Any:
        return column if _types(column) <= {exact, _NONE_TYPE} else _MISS

    return convert


def _per_value_column(dump: _Dump) -> _Column:
    # Kinds without a column converter of their own: the value converter, once per value.
    def convert(column: Sequence[Any]) -> Any:
        dumped = list(map(dump, column))
        return _MISS if any(map(is_, dumped, repeat(_MISS))) else dumped

    return convert


@dataclass(frozen=True, slots=True)
class _Kind:
    """How values of one type are written: ``exact``, for the types whose values are their
    own JSON form (str, int, bool: most fields), is the type to check, else ``dump`` converts
    (answering ``_MISS`` for a value it does not take). ``container``: values are lists or
    dicts, which the saved model's copy must not share with the original. ``column``: the
    same for a whole column of values (a batch); None: ``dump`` once per value."""

    dump: _Dump | None
    exact: type | None = None
    container: bool = False
    column: _Column | None = None

    def column_converter(self) -> _Column:
        if self.column is not None:
            return self.column
        if self.exact is not None:
            return _exact_column(self.exact)
        assert self.dump is not None
        return _per_value_column(self.dump)


_SCALAR_KINDS: Final[Mapping[object, _Kind]] = {
    str: _Kind(None, exact=str),
    int: _Kind(None, exact=int),
    bool: _Kind(None, exact=bool),
    float: _Kind(_float, column=_float_column),
    Decimal: _Kind(_decimal, column=_decimal_column),
    datetime: _Kind(_datetime, column=_datetime_column),
}


def _as_dump(kind: _Kind) -> _Dump:
    if kind.dump is not None:
        return kind.dump
    exact = kind.exact

    def check(value: Any) -> Any:
        return value if type(value) is exact else _MISS

    return check


def _enum_kind(enum: type[Enum]) -> _Kind | None:
    # pydantic writes a member as its value: only str and int values are their own JSON form.
    value_types = {type(member.value) for member in enum}
    if (
        issubclass(enum, Flag)
        or value_types not in ({str}, {int})
        or hasattr(enum, "__get_pydantic_core_schema__")  # validated or written its own way
    ):
        return None

    def dump(value: Any) -> Any:
        return value.value if type(value) is enum else _MISS

    return _Kind(dump, column=_enum_column(enum))


def _optional_kind(inner: _Kind) -> _Kind:
    inner_dump = _as_dump(inner)

    def dump(value: Any) -> Any:
        return None if value is None else inner_dump(value)

    column = None if inner.exact is None else _optional_exact_column(inner.exact)
    return _Kind(dump, column=column)


def _list_kind(item: _Kind) -> _Kind:
    exact, item_dump = item.exact, _as_dump(item)

    def dump(value: Any) -> Any:
        if type(value) is not list:
            return _MISS
        if exact is not None:  # the common list[str]: no call per element
            for element in value:
                if type(element) is not exact:
                    return _MISS
            return value.copy()
        result = []
        for element in value:
            dumped = item_dump(element)
            if dumped is _MISS:
                return _MISS
            result.append(dumped)
        return result

    column = None if exact is None else _list_of_exact_column(exact)
    return _Kind(dump, container=True, column=column)


def _dict_kind(item: _Kind) -> _Kind:
    item_dump = _as_dump(item)

    def dump(value: Any) -> Any:
        if type(value) is not dict:
            return _MISS
        result = {}
        for key, element in value.items():
            dumped = item_dump(element)
            # A key UTF-8 cannot encode (a lone surrogate) is left to pydantic, which writes it
            # its own way (as "\ufffd"s), where the lane would keep it.
            if type(key) is not str or dumped is _MISS or not (key.isascii() or _utf8(key)):
                return _MISS
            result[key] = dumped
        return result

    return _Kind(dump, container=True)


def _kind(annotation: object, *, nested: bool = False) -> _Kind | None:
    """The kind of a field's type, or None if the lane does not cover it. Containers hold
    scalars or optional scalars only (``nested``)."""
    if isinstance(annotation, type):  # (only classes: an Annotated may not be hashable)
        if annotation in _SCALAR_KINDS:
            return _SCALAR_KINDS[annotation]
        return _enum_kind(annotation) if issubclass(annotation, Enum) else None
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, UnionType) and len(args) == 2 and type(None) in args:
        (inner,) = (arg for arg in args if arg is not type(None))
        found = _kind(inner, nested=True)
        return None if found is None or found.container else _optional_kind(found)
    if nested:
        return None
    if origin is list and len(args) == 1:
        found = _kind(args[0], nested=True)
        return None if found is None else _list_kind(found)
    if origin is dict and len(args) == 2 and args[0] is str:
        found = _kind(args[1], nested=True)
        return None if found is None else _dict_kind(found)
    return None  # Annotated inner types, Literal, tuples, sets, models, anything else


# --- plans -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """The lane of one model class: made once by :func:`build_plan`, never changed.

    Each method answers ``None`` for anything it does not cover; the caller then takes the
    pydantic path, which gives the same result or the right error.
    """

    model: type[BaseModel]
    type_string: str
    # (name, exact type or None, converter or None) of the model's own fields, in order.
    fields: tuple[tuple[str, type | None, _Dump | None], ...]
    containers: tuple[str, ...]  # the fields holding lists or dicts
    all_names: frozenset[str]  # every field, id, rev and tombstone included
    order: tuple[str, ...]  # the same, in the order pydantic sets them
    # For batches: a column converter per field of ``fields``, in their order.
    columns: tuple[_Column, ...] = ()

    def doc(self, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """``Model.to_doc()`` of a model whose ``__dict__`` is ``values``.

        Only for keys in the fields' order: pydantic's dump follows the ``__dict__``, whose
        order an edit of it (a key deleted and set again) can change, and the lane writes in
        the fields' order."""
        return self._doc(values) if tuple(values) == self.order else None

    def checked(
        self, values: Mapping[str, Any], overrides: Mapping[str, str | None]
    ) -> tuple[dict[str, Any], BaseModel] | None:
        """What the store's save writes: the document of ``values`` (a model's ``__dict__``)
        with ``overrides`` applied (the mapper passes the final id among them: ids are made
        in one place), and a validated copy of the model that shares no list or dict with the
        original. (Only for keys in the fields' order, as :meth:`doc`: the copy must have
        the order a validation gives it.)"""
        if tuple(values) != self.order:
            return None
        copied = dict(values)
        copied.update(overrides)
        doc_id, rev, tombstone = copied["id"], copied["rev"], copied["tombstone"]
        if doc_id is not None and (
            type(doc_id) is not str or not is_valid_doc_id(doc_id, allow_special=False)
        ):
            return None
        if (rev is not None and type(rev) is not str) or type(tombstone) is not bool:
            return None
        doc = self._doc(copied)
        if doc is None:
            return None
        for name in self.containers:
            copied[name] = copied[name].copy()  # (never None: an optional list is not covered)
        return doc, self._make(copied)

    def checked_batch(
        self, values: Sequence[dict[str, Any]], ids: Sequence[str | None]
    ) -> list[tuple[dict[str, Any], BaseModel]] | None:
        """:meth:`checked` of many models at once (``values``: their ``__dict__``s, ``ids``:
        the final id of each, which replaces its own), or None: then :meth:`checked` of each
        decides, one model at a time.

        It checks and writes a column (one field of every model) at a time, each check one
        pass in C; documents and models are then put together from the columns, also in C.
        Both ways give the same documents and models (the tests compare them); a batch this
        cannot write whole (a value any check doubts, revs or tombstones that differ between
        models, anything that raises) is left to :meth:`checked`.
        """
        try:
            return self._batch(values, ids)
        except Exception:  # (an odd tzinfo, an overflow): the model at a time path decides
            return None

    def _batch(
        self, values: Sequence[dict[str, Any]], ids: Sequence[str | None]
    ) -> list[tuple[dict[str, Any], BaseModel]] | None:
        count = len(values)
        if not count or set(map(tuple, values)) != {self.order}:
            return None  # (each model's keys in the fields' order, as for checked)
        rows = list(map(itemgetter(*self.order), values))
        original: dict[str, Sequence[Any]] = dict(
            zip(self.order, zip(*rows, strict=True), strict=True)
        )
        original["id"] = tuple(ids)
        if not _valid_ids(original["id"]):
            return None
        revs, tombstones = original["rev"], original["tombstone"]
        if not (_types(revs) <= {str} or _types(revs) <= {_NONE_TYPE}):
            return None
        if not _types(tombstones) <= {bool} or len(set(tombstones)) != 1:
            return None
        names = [name for name, _, _ in self.fields]
        dumped = [
            convert(original[name]) for name, convert in zip(names, self.columns, strict=True)
        ]
        if any(map(is_, dumped, repeat(_MISS))):
            return None
        # Each document a copy of one with the keys in order, then filled a column at a time.
        template: dict[str, Any] = {"_id": None}
        if revs[0] is not None:
            template["_rev"] = None
        template["type"] = self.type_string
        template.update(dict.fromkeys(names))
        if tombstones[0]:
            template["tombstone"] = True
        docs = list(map(dict.copy, repeat(template, count)))
        _fill(docs, "_id", original["id"])
        if revs[0] is not None:
            _fill(docs, "_rev", revs)
        for name, column in zip(names, dumped, strict=True):
            _fill(docs, name, column)
        # The saved models: copies of their own values, containers copied too (shared with
        # neither the original nor the document), with their final ids.
        held = list(map(dict.copy, values))
        _fill(held, "id", original["id"])
        for name in self.containers:
            _fill(held, name, list(map(_copy, original[name])))
        models = list(map(self.model.__new__, repeat(self.model, count)))
        _each(_set_attribute, models, repeat("__dict__"), held)
        _each(_set_fields_set, models, map(set, repeat(self.all_names, count)))
        _each(_set_extra, models, repeat(None))
        _each(_set_private, models, repeat(None))
        return list(zip(docs, models, strict=True))

    def _doc(self, values: Mapping[str, Any]) -> dict[str, Any] | None:
        doc: dict[str, Any] = {}
        if values["id"] is not None:
            doc["_id"] = values["id"]
        if values["rev"] is not None:
            doc["_rev"] = values["rev"]
        doc["type"] = self.type_string
        for name, exact, dump in self.fields:
            value = values[name]
            if dump is not None:
                value = dump(value)
                if value is _MISS:
                    return None
            elif type(value) is not exact:
                return None
            doc[name] = value
        if values["tombstone"]:
            doc["tombstone"] = True
        return doc

    def _make(self, values: dict[str, Any]) -> BaseModel:
        # A model holding ``values`` (checked), as pydantic's validator makes one from every
        # field: all of them count as set.
        model = self.model.__new__(self.model)
        _set_attribute(model, "__dict__", values)
        _set_fields_set(model, set(self.all_names))
        _set_extra(model, None)
        _set_private(model, None)
        return model


def _each(function: Callable[..., Any], *columns: Any) -> None:
    """``function`` applied to each row of ``columns``, in C (a zero-length deque consumes)."""
    deque(map(function, *columns), maxlen=0)


_copy: Final = methodcaller("copy")  # a list's or a dict's


def _fill(dicts: list[dict[str, Any]], key: str, column: Sequence[Any]) -> None:
    """``dicts[i][key] = column[i]`` for each i, in C."""
    _each(setitem, dicts, repeat(key), column)


def _valid_ids(ids: Sequence[str | None]) -> bool:
    """Whether each of ``ids`` is None or what ``is_valid_doc_id(id, allow_special=False)``
    accepts (a non-empty str, not starting with "_", valid UTF-8), in C."""
    named = [doc_id for doc_id in ids if doc_id is not None]
    if not _types(named) <= {str} or "" in named:
        return False
    if any(map(methodcaller("startswith", "_"), named)):
        return False
    try:
        "".join(named).encode()  # (a lone surrogate anywhere fails the whole)
    except UnicodeEncodeError:
        return False
    return True


def build_plan(
    model: type[BaseModel],
    *,
    base: type[BaseModel],
    type_string: str,
    plain_markers: tuple[type, ...],
) -> Plan | None:
    """The lane of ``model`` (a concrete subclass of ``base``, whose documents have type
    ``type_string``), or None if anything about it may act differently from what the lane
    does: a config, ``__init__``, validator, serializer, computed field, post-init hook, core
    schema or save-path method (``to_doc``, ``model_validate``...) of its own, a field
    excluded from dumps, field metadata other than instances of exactly the ``plain_markers``
    types (constraints, strictness, validators, markers it does not know: an ``Encrypted()``
    field must never be written by the lane), or a field type the lane does not cover.
    """
    if not _default_behaviour(model, base):
        return None
    fields: list[tuple[str, type | None, _Dump | None]] = []
    columns: list[_Column] = []
    containers = []
    for name, info in model.model_fields.items():
        if name in base.model_fields:  # id, rev and tombstone: the plan handles them itself
            continue
        kind = _kind(info.annotation)
        if (
            kind is None
            or info.exclude
            or getattr(info, "exclude_if", None) is not None  # (pydantic >= 2.11)
            or not all(_plain_marker(m, plain_markers) for m in info.metadata)
        ):
            return None
        fields.append((name, kind.exact, kind.dump))
        columns.append(kind.column_converter())
        if kind.container:
            containers.append(name)
    return Plan(
        model=model,
        type_string=type_string,
        fields=tuple(fields),
        containers=tuple(containers),
        all_names=frozenset(model.model_fields),
        order=tuple(model.model_fields),
        columns=tuple(columns),
    )


def _plain_marker(metadata: object, known: tuple[type, ...]) -> bool:
    # Only markers known to leave the stored form alone, by exact type: a subclass, or a
    # marker a codec applies (hashing, encryption), may change what is written.
    return type(metadata) in known and not hasattr(metadata, "__get_pydantic_core_schema__")


def _default_behaviour(model: type[BaseModel], base: type[BaseModel]) -> bool:
    """Whether ``model`` validates and writes its fields exactly as ``base`` does: none of
    the config, hooks, validators (but ``base``'s own), serializers, computed fields, core
    schema or save-path methods (:data:`_PATH_METHODS`) of a class of its own."""
    decorators = model.__pydantic_decorators__
    validators = decorators.field_validators
    own_schema = model.__get_pydantic_core_schema__.__func__  # type: ignore[attr-defined]
    between = model.__mro__[: model.__mro__.index(base)]
    return not (
        any(name in vars(cls) for cls in between for name in _PATH_METHODS)
        or model.model_config != base.model_config
        or model.__init__ is not base.__init__
        or model.__pydantic_post_init__ is not None
        or decorators.validators
        or decorators.root_validators
        or decorators.model_validators
        or decorators.field_serializers
        or decorators.model_serializers
        or decorators.computed_fields
        or own_schema is not base.__get_pydantic_core_schema__.__func__  # type: ignore[attr-defined]
        or not validators.keys() <= base.__pydantic_decorators__.field_validators.keys()
        or any(getattr(model, n).__func__ is not getattr(base, n).__func__ for n in validators)
    )
