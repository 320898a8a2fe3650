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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum, Flag
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


@dataclass(frozen=True, slots=True)
class _Kind:
    """How values of one type are written: ``exact``, for the types whose values are their
    own JSON form (str, int, bool: most fields), is the type to check, else ``dump`` converts
    (answering ``_MISS`` for a value it does not take). ``container``: values are lists or
    dicts, which the saved model's copy must not share with the original."""

    dump: _Dump | None
    exact: type | None = None
    container: bool = False


_SCALAR_KINDS: Final[Mapping[object, _Kind]] = {
    str: _Kind(None, exact=str),
    int: _Kind(None, exact=int),
    bool: _Kind(None, exact=bool),
    float: _Kind(_float),
    Decimal: _Kind(_decimal),
    datetime: _Kind(_datetime),
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

    return _Kind(dump)


def _optional_kind(inner: _Kind) -> _Kind:
    inner_dump = _as_dump(inner)

    def dump(value: Any) -> Any:
        return None if value is None else inner_dump(value)

    return _Kind(dump)


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

    return _Kind(dump, container=True)


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
        if kind.container:
            containers.append(name)
    return Plan(
        model=model,
        type_string=type_string,
        fields=tuple(fields),
        containers=tuple(containers),
        all_names=frozenset(model.model_fields),
        order=tuple(model.model_fields),
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
