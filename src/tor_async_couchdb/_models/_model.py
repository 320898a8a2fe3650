"""Typed documents: pydantic models mapped to CouchDB documents with a versioned ``type``.

Declaring a model::

    class Fruit(Model, type_name="fruit", version="2.0",
                indexes={"fruit_id_updated_on": ("fruit_id", "updated_on")}):
        fruit_id: Annotated[str, Indexed()]          # view fruit_by_fruit_id
        color: str
        updated_on: datetime

        @upgrade("1.0", to="2.0")
        @staticmethod
        def _colour_to_color(doc: dict[str, Any]) -> dict[str, Any]:
            doc["color"] = doc.pop("colour")
            return doc

Every document carries ``"type": "fruit_v2.0"`` (``<type_name>_v<major>.<minor>``); reading an
older document runs the upgrade steps from its version up to the model's, in order.

Why a decorator with an explicit target (``@upgrade("1.0", to="1.1")``) for upgrade steps: the
step sits next to the fields it rewrites, and naming both ends makes a chain with a hole (a step
to 1.1 but none from 1.1) detectable when the class is created, instead of a step written for
1.0 → 1.1 silently being taken for 1.0 → 2.0 after the next version bump. The framework sets
the ``type`` after each step; a step only moves fields around. Stack it on ``@staticmethod`` (the
step takes the raw document, not ``self``). Steps are read from the class itself, not inherited.

Abstract bases share fields without being stored themselves: ``class Stamped(Model,
abstract=True)``; they take no ``type_name``/``version``/``indexes`` and cannot be instantiated.
Field markers (:class:`Indexed`, and later hashing, encryption and merge-policy markers) are
inherited with the fields; compound ``indexes`` belong to the concrete class that declares them.

Values are checked on construction, on assignment and on :meth:`Model.model_copy` with
``update``; every failure is a :class:`ModelValidationError`. Datetimes must be timezone-aware;
they are stored in UTC as ``2026-11-27T11:36:01.123456Z`` (always microseconds, always ``Z``), so
that the strings sort like the instants in CouchDB views. Decimals are stored as strings (exact);
``float`` rejects NaN and infinities, which JSON cannot hold.

Never-delete style: ``tombstone`` (stored as ``"tombstone": true`` only when set) marks a
document as deleted while keeping it. Views emit tombstoned documents too, with the value
``true`` instead of ``null`` (see :mod:`._views`), so the store can leave them out by default
and a "most recent" query still sees a tombstone as the latest state.
"""

from __future__ import annotations

import copy
import inspect
import re
from collections import Counter, OrderedDict, abc, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from itertools import repeat
from operator import eq, methodcaller
from types import MappingProxyType, UnionType
from typing import (
    Annotated,
    Any,
    ClassVar,
    Final,
    Literal,
    Self,
    TypeVar,
    Union,
    get_args,
    get_origin,
    overload,
)
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    WrapSerializer,
    WrapValidator,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError, PydanticSerializationError

from .._exceptions import (
    ModelDefinitionError,
    ModelValidationError,
    NotJSONError,
    UnknownIndexError,
    WrongTypeError,
)
from .._json import format_utc
from ._fastlane import Plan, build_plan

__all__ = [
    "WRITE_STAMP",
    "FieldMarker",
    "Index",
    "Indexed",
    "Model",
    "ModelInfo",
    "ModelSet",
    "UpgradeFunction",
    "UpgradeStep",
    "current_models",
    "format_type",
    "parse_type",
    "upgrade",
]

Version = tuple[int, int]
UpgradeFunction = Callable[[dict[str, Any]], dict[str, Any]]

_TYPE_NAME_RE: Final = re.compile(r"[a-z][a-z0-9_]*")
_VERSION_RE: Final = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
# Anchored at the end: the name may itself hold "_v" ("a_v2_v1.0" is type "a_v2", version 1.0).
_TYPE_RE: Final = re.compile(r"(?P<name>[a-z][a-z0-9_]*)_v(?P<major>[0-9]+)\.(?P<minor>[0-9]+)")
_INDEX_NAME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_BASE_FIELDS: Final = frozenset({"id", "rev", "tombstone"})
_MODEL_ID_PATTERN: Final = "^[^_]"
# How pydantic's errors about a model's id are worded instead (by error type).
_ID_ERRORS: Final = {
    "string_pattern_mismatch": "a model's document id must be neither empty nor start with '_' "
    "(CouchDB reserves '_' for design and local documents)",
    "string_unicode": "a document id must be valid UTF-8",
}
# How pydantic's serializer reports a value that does not fit its field (warnings="error").
_UNEXPECTED_VALUE: Final = re.compile(
    r"Expected `(?P<expected>[^`]*)`[^\n]*?field_name='(?P<field>[^']*)'"
)
# The base fields become _id, _rev and an optional tombstone, not plain document keys. (A set,
# not a frozenset, because that is what pydantic's exclude takes; never changed.)
_DUMP_EXCLUDE: Final[set[str]] = set(_BASE_FIELDS)
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
# Values that cannot hold a datetime (datetime itself is a date: test for it first).
_LEAVES: Final = (str, int, float, Decimal, Enum, date, time, timedelta, UUID, bytes, type(None))
_UPGRADE_ATTR: Final = "__couch_upgrade__"
# The write stamp the store puts in documents it writes to a cluster, so that two writers of the
# same body on the same parent make different revisions (see _store/_quorum.py). Not a field:
# reading leaves it out. (No field can have this name: it is not a Python identifier.)
WRITE_STAMP: Final = "~write"

_M = TypeVar("_M", bound="FieldMarker")
_Model = TypeVar("_Model", bound="Model")
# What @upgrade decorates: a staticmethod at run time, which type checkers see as its function.
_S = TypeVar("_S")


# --- field markers -------------------------------------------------------------------------


class FieldMarker:
    """Base of the markers put on fields with ``Annotated[T, marker]``.

    A marker only describes; the layer that cares (views, codecs, the reconciler) reads them
    with :meth:`Model.field_markers`. Put markers on the outermost ``Annotated`` of a field
    (``Annotated[str | None, Indexed()]``, not ``Annotated[str, Indexed()] | None``).

    A marker that only a codec gives meaning to (``Encrypted()``, ``Hashed()``) sets
    ``needs_codec``: the store then refuses a model carrying it through a handle with no
    codec for it, rather than write the field as it is.
    """

    __slots__ = ()
    needs_codec: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class Indexed(FieldMarker):
    """Index the field: a view ``<type_name>_by_<name>`` keyed by the field's value.

    ``name`` defaults to the field name. Documents without the field (older versions) are left
    out of the view; a ``None`` value is indexed as ``null``. Decimal values are stored as
    strings, so their views order them as strings: use them for equality, not ranges.
    """

    name: str | None = None


# --- class metadata --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Index:
    """One view of a model: its index ``name``, the ``fields`` of its key and its ``view_name``.

    A one-field index has the field's value as key, a compound index the list of values.
    """

    name: str
    fields: tuple[str, ...]
    view_name: str


@dataclass(frozen=True, slots=True)
class UpgradeStep:
    """Turns a raw document of ``from_version`` into one of ``to_version``."""

    from_version: Version
    to_version: Version
    function: UpgradeFunction


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a concrete model class declares, as ``Model.__couch__``.

    ``type_string`` is the ``type`` written to documents; ``upgrades`` are sorted by their
    ``from_version``; ``markers`` pairs each field name with each of its :class:`FieldMarker`.
    """

    type_name: str
    version: Version
    type_string: str
    indexes: tuple[Index, ...]
    upgrades: tuple[UpgradeStep, ...]
    markers: tuple[tuple[str, FieldMarker], ...]

    @property
    def all_view(self) -> str:
        """Name of the view over every document of the model, keyed by id (= creation time)."""
        return f"{self.type_name}_all"

    @property
    def view_names(self) -> tuple[str, ...]:
        """The model's views: :attr:`all_view` first, then one per index."""
        return (self.all_view, *(index.view_name for index in self.indexes))

    def index(self, name: str) -> Index:
        """Return the index called ``name``. Raises :class:`UnknownIndexError` (a
        :class:`KeyError`) if there is none."""
        for index in self.indexes:
            if index.name == name:
                return index
        raise UnknownIndexError(f"{self.type_name} has no index {name!r}")

    def index_for_fields(self, *fields: str) -> Index | None:
        """Return the index whose key is exactly ``fields``, in that order, if there is one."""
        return next((index for index in self.indexes if index.fields == fields), None)


# --- type strings ----------------------------------------------------------------------------


def format_type(type_name: str, version: Version) -> str:
    """Return the ``type`` string of a model name and version, e.g. ``"fruit_v1.0"``."""
    return f"{type_name}_v{version[0]}.{version[1]}"


def parse_type(value: object) -> tuple[str, Version] | None:
    """Return ``(type_name, (major, minor))`` of a ``type`` value, or ``None`` if malformed."""
    match = _TYPE_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return None
    return match["name"], (int(match["major"]), int(match["minor"]))


def _parse_version(model: str, value: object) -> Version:
    match = _VERSION_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ModelDefinitionError(
            f"{model}: version must be '<major>.<minor>' like '1.0', not {value!r}", model=model
        )
    return int(match[1]), int(match[2])


def _version_str(version: Version) -> str:
    return f"{version[0]}.{version[1]}"


# --- upgrade declaration ---------------------------------------------------------------------


def upgrade(from_version: str, *, to: str) -> Callable[[_S], _S]:
    """Declare a static method of a model as the upgrade step ``from_version`` → ``to``.

    Stack it on ``@staticmethod``. The method takes the raw document (a private deep copy, free
    to change) and returns the document of the next version; the framework sets its ``type``.
    Raises :class:`ModelDefinitionError` if not given a static method; the versions are checked
    when the model class is created.
    """

    def mark(method: _S) -> _S:
        if not isinstance(method, staticmethod):
            raise ModelDefinitionError(
                f"@upgrade({from_version!r}, to={to!r}) must be stacked on a @staticmethod",
                model=getattr(method, "__qualname__", repr(method)),
            )
        setattr(method.__func__, _UPGRADE_ATTR, (from_version, to))
        return method

    return mark


# --- datetimes -------------------------------------------------------------------------------


def _naive_datetime_path(value: object, path: str) -> str | None:
    """Return where a naive datetime sits inside ``value`` ("" for ``value`` itself), if any."""
    found = _naive_datetime_at(value)
    if found is None:
        return None
    return f"{path}.{found}" if path and found else path or found


def _naive_datetime_at(value: object) -> str | None:
    # Most values are leaves: answer before the abstract-class checks below, which are slow.
    if type(value) in _SCALARS:
        return None
    if isinstance(value, datetime):
        return "" if value.utcoffset() is None else None
    if isinstance(value, _LEAVES):
        return None
    items: Iterable[tuple[object, object]]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple | set | frozenset):
        items = enumerate(value)
    elif isinstance(value, BaseModel):
        extra = value.__pydantic_extra__  # a model with extra="allow" keeps them apart
        items = [*value.__dict__.items(), *extra.items()] if extra else value.__dict__.items()
    elif isinstance(value, Mapping):
        items = value.items()
    else:
        return None
    for key, item in items:
        found = None if type(item) in _SCALARS else _naive_datetime_at(item)
        if found is not None:
            # An empty key adds no step to the path (as "" + "." + key would suggest one).
            return f"{key}.{found}" if found and str(key) else found or str(key)
    return None


@dataclass(frozen=True, slots=True)
class _DumpedDatetimes:
    """Where the dump of a model may hold datetimes, to be written in the fixed UTC form.

    ``attributes`` are plain datetime fields (``datetime``, ``datetime | None``, without a
    serializer): their dumped value is the attribute. The ``dumped`` fields hold datetimes
    deeper, or through serializers: found by walking their dump in python mode. (A set, as
    pydantic's ``include`` takes; never changed.)
    """

    attributes: tuple[str, ...]
    dumped: set[str]


def _with_utc_datetimes(python: object, json: Any) -> Any:
    """Rewrite, in the JSON form of a value, every datetime in the fixed UTC format.

    ``python`` and ``json`` are the same dump in pydantic's python and JSON modes: walking both
    finds the datetimes wherever the fields nest them, without a serializer per type. ``json``
    is a fresh dump, so it is changed in place.
    """
    if type(python) in _SCALARS:
        return json
    if isinstance(python, datetime):
        return format_utc(python)
    if isinstance(python, _LEAVES):
        return json
    if isinstance(python, dict) and isinstance(json, dict) and len(python) == len(json):
        if python.keys() == json.keys():  # string keys (always so for the fields): no datetime
            for key, p_value in python.items():
                if type(p_value) not in _SCALARS:
                    json[key] = _with_utc_datetimes(p_value, json[key])
        elif any(isinstance(key, datetime) for key in python):
            return {
                (format_utc(p_key) if isinstance(p_key, datetime) else j_key): (
                    _with_utc_datetimes(p_value, j_value)
                )
                for (p_key, p_value), (j_key, j_value) in zip(
                    python.items(), json.items(), strict=True
                )
            }
        else:
            for p_value, j_key in zip(python.values(), list(json), strict=True):
                json[j_key] = _with_utc_datetimes(p_value, json[j_key])
    elif isinstance(python, set | frozenset) and isinstance(json, list):
        # A set's order means nothing, so pairing its values with the dumped list's is not
        # possible: rewrite a set of datetimes whole, from its values.
        if python and all(isinstance(value, datetime) for value in python):
            return sorted(format_utc(value) for value in python)
    elif isinstance(python, list | tuple) and isinstance(json, list) and len(python) == len(json):
        for i, p_value in enumerate(python):
            if type(p_value) not in _SCALARS:
                json[i] = _with_utc_datetimes(p_value, json[i])
    return json


# --- errors ----------------------------------------------------------------------------------


def _message(error: ErrorDetails) -> str:
    if error["loc"] == ("id",):
        return _ID_ERRORS.get(error["type"], error["msg"])
    return error["msg"]


def _validation_error(
    model: type[BaseModel], exc: ValidationError, doc_id: object
) -> ModelValidationError:
    errors = tuple(
        (".".join(str(part) for part in error["loc"]), _message(error))
        for error in exc.errors(include_url=False, include_input=False)
    )
    summary = "; ".join(f"{path or '(model)'}: {message}" for path, message in errors)
    doc = doc_id if isinstance(doc_id, str) else None
    where = f" document {doc!r}" if doc is not None else ""
    return ModelValidationError(
        f"invalid {model.__qualname__}{where}: {summary}",
        model=model.__qualname__,
        doc_id=doc,
        errors=errors,
    )


# --- the model base --------------------------------------------------------------------------


class Model(BaseModel):
    """Base of typed CouchDB documents; see the module docstring for how to declare one.

    ``id`` and ``rev`` are the document's ``_id`` and ``_rev`` (``None`` until saved);
    ``tombstone`` marks a kept-but-deleted document. Field names must not start with ``_``
    (CouchDB reserves them), nor be ``type``, ``id``, ``rev`` or ``tombstone``; aliases are not
    supported (a document key is its field name).
    """

    model_config = ConfigDict(
        validate_assignment=True,
        extra="forbid",
        allow_inf_nan=False,
        # Values may be secrets (hashed or encrypted fields): keep them out of error messages.
        hide_input_in_errors=True,
    )

    __couch__: ClassVar[ModelInfo | None] = None
    # Set for each subclass by _prepare_documents, never changed afterwards: the keys of a
    # document that from_doc does not validate ("type", computed fields), and where the dump
    # may hold datetimes (None: anywhere, walk all of it).
    __couch_skipped_keys__: ClassVar[frozenset[str]] = frozenset({"type", WRITE_STAMP})
    # The keys a current document may have for from_doc to read it by its quickest path.
    __couch_doc_keys__: ClassVar[frozenset[str]] = frozenset()
    __couch_datetimes__: ClassVar[_DumpedDatetimes | None] = None
    # The plain-Python lane that saves the class, if its fields allow one (see _fastlane.py).
    __couch_fast__: ClassVar[Plan | None] = None

    # Checked by pydantic itself (a Python validator would run on every document read): not
    # empty and not starting with "_" (design and local documents are not models) by the
    # pattern; valid UTF-8 because a str with a constraint is matched as UTF-8 text, which a
    # lone surrogate is not (a test holds pydantic to it). Errors are worded by
    # _validation_error.
    id: Annotated[str, StringConstraints(pattern=_MODEL_ID_PATTERN)] | None = None
    rev: str | None = None
    tombstone: bool = False

    def __init_subclass__(
        cls,
        *,
        type_name: str | None = None,
        version: str | None = None,
        indexes: Mapping[str, Sequence[str]] | None = None,
        abstract: bool = False,
        **kwargs: Any,
    ) -> None:
        # The keywords are used by __pydantic_init_subclass__, once pydantic has the fields.
        super().__init_subclass__(**kwargs)

    @classmethod
    def __pydantic_init_subclass__(
        cls,
        *,
        type_name: str | None = None,
        version: str | None = None,
        indexes: Mapping[str, Sequence[str]] | None = None,
        abstract: bool = False,
        **kwargs: Any,
    ) -> None:
        """Check the declaration and set ``__couch__``. Raises :class:`ModelDefinitionError`."""
        super().__pydantic_init_subclass__(**kwargs)
        cls.__couch__ = _define(
            cls, type_name=type_name, version=version, indexes=indexes, abstract=abstract
        )
        _prepare_documents(cls)

    def __init__(self, /, **data: Any) -> None:
        """Validate ``data``. Raises :class:`ModelValidationError` (and for an abstract model,
        :class:`ModelDefinitionError`)."""
        type(self).couch_info()
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _validation_error(type(self), exc, data.get("id")) from exc

    # Tell pydantic this __init__ only wraps its own (as pydantic's RootModel does): otherwise
    # model_validate() would call it and turn our ModelValidationError into a ValueError inside
    # its ValidationError.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    def __setattr__(self, name: str, value: Any) -> None:
        """Validate and set a field. Raises :class:`ModelValidationError`."""
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            raise _validation_error(type(self), exc, self.id) from exc

    @field_validator("*", mode="after")
    @classmethod
    def _reject_naive_datetimes(cls, value: Any) -> Any:
        # This runs on every field of every validation: settle the common values here.
        if type(value) in _SCALARS:
            return value
        if isinstance(value, datetime):
            if value.utcoffset() is not None:
                return value
        elif isinstance(value, _LEAVES):
            return value
        path = _naive_datetime_path(value, "")
        if path is not None:
            raise PydanticCustomError(
                "naive_datetime",
                "datetime{where} has no timezone: pass an aware one, e.g. datetime.now(UTC)",
                {"where": f" at {path}" if path else ""},
            )
        return value

    @classmethod
    def couch_info(cls) -> ModelInfo:
        """Return ``__couch__``. Raises :class:`ModelDefinitionError` for an abstract model."""
        info = cls.__couch__
        if info is None:
            raise ModelDefinitionError(
                f"{cls.__qualname__} is abstract: declare a subclass with type_name and version",
                model=cls.__qualname__,
            )
        return info

    @overload
    @classmethod
    def field_markers(cls) -> tuple[tuple[str, FieldMarker], ...]: ...

    @overload
    @classmethod
    def field_markers(cls, kind: type[_M]) -> tuple[tuple[str, _M], ...]: ...

    @classmethod
    def field_markers(
        cls, kind: type[FieldMarker] = FieldMarker
    ) -> tuple[tuple[str, FieldMarker], ...]:
        """Return ``(field name, marker)`` for each marker of type ``kind`` (all by default)."""
        return tuple(
            (name, marker) for name, marker in _collect_markers(cls) if isinstance(marker, kind)
        )

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Self:
        """Pydantic's ``model_validate``; raises :class:`ModelValidationError`."""
        cls.couch_info()
        try:
            if kwargs:
                return super().model_validate(obj, **kwargs)
            # Without options, the validator itself (db.save validates again on every call).
            model: Self = cls.__pydantic_validator__.validate_python(obj)
            return model
        except ValidationError as exc:
            doc_id = obj.get("id") if isinstance(obj, Mapping) else None
            raise _validation_error(cls, exc, doc_id) from exc

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Self:
        """Pydantic's ``model_validate_json``; raises :class:`ModelValidationError`."""
        cls.couch_info()
        try:
            return super().model_validate_json(json_data, **kwargs)
        except ValidationError as exc:
            raise _validation_error(cls, exc, None) from exc

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """Copy the model; unlike pydantic's, values in ``update`` are validated.

        Raises :class:`ModelValidationError` for a bad or unknown field in ``update``.
        """
        copied = super().model_copy(deep=deep)
        if not update:
            return copied
        # The fields only: __dict__ also holds cached computed fields once they were read.
        values = copied.__dict__
        fields = {name: values[name] for name in type(self).model_fields if name in values}
        return type(self)(**{**fields, **update})

    def to_doc(self) -> dict[str, Any]:
        """Return the JSON-ready document: ``_id``/``_rev`` when set, the current ``type``,
        the fields, and ``"tombstone": true`` when set.

        Raises :class:`NotJSONError` if a field value has no JSON form.
        """
        fast = type(self).__couch_fast__
        if fast is not None:
            found = fast.doc(self.__dict__)
            if found is not None:
                return found
        info = type(self).couch_info()
        doc: dict[str, Any] = {}
        if self.id is not None:
            doc["_id"] = self.id
        if self.rev is not None:
            doc["_rev"] = self.rev
        doc["type"] = info.type_string
        doc.update(self._json_fields())
        if self.tombstone:
            doc["tombstone"] = True
        return doc

    def _json_fields(self) -> dict[str, Any]:
        # The serializer itself, as model_dump calls it: to_doc runs on every save.
        serializer = self.__pydantic_serializer__
        datetimes = type(self).__couch_datetimes__
        try:
            # warnings="error": a value that does not fit its field (a nested model changed in
            # place, or built with model_construct) fails here instead of being written.
            json: dict[str, Any] = serializer.to_python(
                self, mode="json", exclude=_DUMP_EXCLUDE, warnings="error"
            )
            if datetimes is None:
                python = serializer.to_python(self, exclude=_DUMP_EXCLUDE)
                fields: dict[str, Any] = _with_utc_datetimes(python, json)
                return fields
            values = self.__dict__
            for name in datetimes.attributes:
                if name in json:
                    json[name] = _with_utc_datetimes(values.get(name), json[name])
            if datetimes.dumped:
                for name, value in serializer.to_python(self, include=datetimes.dumped).items():
                    json[name] = _with_utc_datetimes(value, json[name])
        except PydanticSerializationError as exc:
            unfit = tuple(
                (found["field"], f"expected {found['expected']}")
                for found in _UNEXPECTED_VALUE.finditer(str(exc))
            )
            if unfit:
                name = type(self).__qualname__
                raise ModelValidationError(
                    f"invalid {name}: "
                    + "; ".join(f"{path}: {message}" for path, message in unfit)
                    + " (changed in place, or built without validation)",
                    model=name,
                    doc_id=self.id,
                    errors=unfit,
                ) from exc
            raise NotJSONError(f"{type(self).__qualname__} {self.id!r}: {exc}") from exc
        return json

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Self:
        """Read a stored document, upgrading an older version first.

        Raises :class:`WrongTypeError` if its ``type`` is missing, malformed, another model's
        or newer than this model; :class:`ModelValidationError` if its values do not fit (or an
        upgrade step fails); :class:`ModelDefinitionError` for an abstract model.
        """
        info = cls.__couch__ or cls.couch_info()  # (raises for an abstract model)
        stored = doc  # (errors name its id: an upgrade step may drop it)
        data: dict[str, Any]
        if doc.get("type") == info.type_string and doc.keys() <= cls.__couch_doc_keys__:
            # The common case: a current document with no other keys than the model's (and
            # no _conflicts, _attachments...). Copied whole, it is the data.
            data = dict(doc)
            del data["type"]
            data.pop(WRITE_STAMP, None)
            data["id"], data["rev"] = data.pop("_id", None), data.pop("_rev", None)
        else:
            if doc.get("type") != info.type_string:  # an older version: check and upgrade
                doc_id = _doc_id(doc)
                found = _doc_version(cls, info, doc, doc_id)
                if found != info.version:
                    doc = _run_upgrades(cls, info, copy.deepcopy(dict(doc)), found, doc_id)
            skipped = cls.__couch_skipped_keys__
            data = {k: v for k, v in doc.items() if k[:1] != "_" and k not in skipped}
            data["id"], data["rev"] = doc.get("_id"), doc.get("_rev")
        try:
            # The validator itself: BaseModel.model_validate only checks its own arguments.
            model: Self = cls.__pydantic_validator__.validate_python(data)
            return model
        except ValidationError as exc:
            raise _validation_error(cls, exc, _doc_id(stored)) from exc


def current_models(cls: type[_Model], docs: Sequence[Mapping[str, Any]]) -> list[_Model] | None:
    """:meth:`Model.from_doc` of every document, in one validation of them all, when each is
    a current document with no keys but the model's (``from_doc``'s quick path) and all are
    valid; else None, and ``from_doc`` of each decides (and names the document that fails).

    Why: a query reads a page of documents at once, and one pydantic call over the list (a
    ``TypeAdapter``) costs a fifth less per document than a call each; the documents are
    made into the validator's input a key at a time for all of them, in C.
    """
    info = cls.__couch__
    if info is None or not docs:
        return None
    if not all(map(eq, map(_type_of, docs), repeat(info.type_string))):
        return None  # (not a set of them: a tampered type may be a list, unhashable)
    if not all(map(cls.__couch_doc_keys__.issuperset, map(_keys_of, docs))):
        return None
    data = list(map(dict, docs))
    deque(map(dict.pop, data, repeat("type")), maxlen=0)
    deque(map(dict.pop, data, repeat(WRITE_STAMP), repeat(None)), maxlen=0)
    for key, field in (("_id", "id"), ("_rev", "rev")):
        values = list(map(dict.pop, data, repeat(key), repeat(None)))
        deque(map(dict.__setitem__, data, repeat(field), values), maxlen=0)
    try:
        return _list_adapter(cls).validate_python(data)
    except ValidationError:
        return None


_type_of = methodcaller("get", "type")
_keys_of = methodcaller("keys")
_LIST_ADAPTER = "__couch_list_adapter__"


def _list_adapter(cls: type[_Model]) -> TypeAdapter[list[_Model]]:
    # Made on first use, not with the class: most model classes never read a page.
    adapter: TypeAdapter[list[_Model]] | None = cls.__dict__.get(_LIST_ADAPTER)
    if adapter is None:
        adapter = TypeAdapter(list[cls])  # type: ignore[valid-type]
        setattr(cls, _LIST_ADAPTER, adapter)
    return adapter


def _doc_id(doc: Mapping[str, Any]) -> str | None:
    doc_id = doc.get("_id")
    return doc_id if isinstance(doc_id, str) else None


# --- reading: type check and upgrades --------------------------------------------------------


def _doc_version(
    model: type[Model], info: ModelInfo, doc: Mapping[str, Any], doc_id: str | None
) -> Version:
    found = doc.get("type")
    parsed = parse_type(found)
    name = model.__qualname__
    if parsed is None or parsed[0] != info.type_name:
        what = "has no type" if found is None else f"has type {found!r}"
        raise WrongTypeError(
            f"document {doc_id!r} {what}, not one of {name} ({info.type_name}_v<major>.<minor>)",
            doc_id=doc_id,
            found=found,
            expected=info.type_string,
        )
    if parsed[1] > info.version:
        raise WrongTypeError(
            f"document {doc_id!r} has type {found!r}, newer than {name} ({info.type_string}): "
            "documents are never downgraded",
            doc_id=doc_id,
            found=found,
            expected=info.type_string,
        )
    return parsed[1]


def _run_upgrades(
    model: type[Model], info: ModelInfo, doc: dict[str, Any], version: Version, doc_id: str | None
) -> dict[str, Any]:
    steps = {step.from_version: step for step in info.upgrades}
    while version != info.version:
        step = steps.get(version)
        if step is None:
            known = ", ".join(_version_str(s.from_version) for s in info.upgrades) or "none"
            raise WrongTypeError(
                f"document {doc_id!r} has type {doc.get('type')!r}: {model.__qualname__} has no "
                f"upgrade from {_version_str(version)} (upgrades from: {known})",
                doc_id=doc_id,
                found=doc.get("type"),
                expected=info.type_string,
            )
        doc = _run_step(model, step, doc, doc_id)
        version = step.to_version
        doc["type"] = format_type(info.type_name, version)
    return doc


def _run_step(
    model: type[Model], step: UpgradeStep, doc: dict[str, Any], doc_id: str | None
) -> dict[str, Any]:
    span = f"{_version_str(step.from_version)} to {_version_str(step.to_version)}"
    try:
        result = step.function(doc)
    except Exception as exc:
        # A document the step does not expect (or a bug in it): say which document and step.
        raise ModelValidationError(
            f"{model.__qualname__} document {doc_id!r}: upgrade from {span} failed: {exc!r}",
            model=model.__qualname__,
            doc_id=doc_id,
            errors=(("", f"upgrade from {span} failed: {exc!r}"),),
        ) from exc
    if not isinstance(result, dict):
        raise ModelDefinitionError(
            f"{model.__qualname__}: the upgrade from {span} returned "
            f"{type(result).__name__}, not the document dict",
            model=model.__qualname__,
        )
    return result


# --- where datetimes can be ------------------------------------------------------------------

_NAIVE_CHECK: Final = "_reject_naive_datetimes"
_TYPE_CHANGERS: Final = (
    AfterValidator,
    PlainValidator,
    WrapValidator,
    PlainSerializer,
    WrapSerializer,
)
# Generic types whose values hold nothing but values of their type arguments.
_CONTAINERS: Final = frozenset(
    {
        list,
        tuple,
        set,
        frozenset,
        dict,
        deque,
        defaultdict,
        OrderedDict,
        Counter,
        Union,
        UnionType,
        abc.Iterable,
        abc.Collection,
        abc.Sequence,
        abc.MutableSequence,
        abc.Set,
        abc.MutableSet,
        abc.Mapping,
        abc.MutableMapping,
    }
)


def _prepare_documents(cls: type[Model]) -> None:
    """Work out once what from_doc and to_doc need, and check datetimes only where they can be.

    ``_reject_naive_datetimes`` is declared for every field ("*"): a Python call per field on
    every validation, which was most of what validating cost. Once the field types are known,
    it is narrowed to the fields that can hold a datetime and the schema built again; the
    fields that can dump one are kept for :meth:`Model.to_doc`. Where it cannot tell (``Any``,
    an unknown class or validator), a field counts as able to.
    """
    cls.__couch_skipped_keys__ = frozenset({"type", WRITE_STAMP, *cls.model_computed_fields})
    cls.__couch_doc_keys__ = frozenset(
        {"_id", "_rev", "type", WRITE_STAMP, *cls.model_fields} - {"id", "rev"}
    )
    info = cls.__couch__
    cls.__couch_fast__ = (
        None
        if info is None
        else build_plan(cls, base=Model, type_string=info.type_string, plain_markers=(Indexed,))
    )
    may_hold = {
        name
        for name, field in cls.model_fields.items()
        if name not in _BASE_FIELDS and _field_may_hold(field)
    }
    cls.__couch_datetimes__ = _dumped_datetimes(cls, may_hold)
    validators = cls.__pydantic_decorators__.field_validators
    decorator = validators.get(_NAIVE_CHECK)
    if decorator is None:  # replaced by the subclass: its own business
        return
    checked = set(cls.model_fields) if "*" in decorator.info.fields else set(decorator.info.fields)
    if checked == may_hold:
        return
    # Ordered as the fields are, so that errors come in the same order as before.
    narrowed = tuple(name for name in cls.model_fields if name in may_hold)
    validators[_NAIVE_CHECK] = replace(decorator, info=replace(decorator.info, fields=narrowed))
    if cls.__pydantic_complete__:
        # The class namespace captured at its creation resolves the types, as it did then.
        cls.model_rebuild(force=True, _parent_namespace_depth=0)


def _dumped_datetimes(cls: type[Model], may_hold: set[str]) -> _DumpedDatetimes | None:
    decorators = cls.__pydantic_decorators__
    if decorators.model_serializers:
        return None
    serialized: set[str] = set()
    for serializer in decorators.field_serializers.values():
        if "*" in serializer.info.fields:
            return None
        serialized.update(serializer.info.fields)
    dumped = (may_hold | serialized) - _BASE_FIELDS  # (the base fields are not dumped)
    attributes = tuple(
        name
        for name in dumped
        if name not in serialized and _plain_datetime(cls.model_fields[name])
    )
    dumped.difference_update(attributes)
    for name, computed in cls.model_computed_fields.items():
        if _may_hold_datetime(computed.return_type, set()):
            dumped.add(name)
    return _DumpedDatetimes(attributes=attributes, dumped=dumped)


def _plain_datetime(field: FieldInfo) -> bool:
    annotation = field.annotation
    if get_origin(annotation) in (Union, UnionType):
        args = set(get_args(annotation))
        if type(None) not in args or len(args) != 2:
            return False
        (annotation,) = args - {type(None)}
    return annotation is datetime and _harmless(field.metadata)


def _field_may_hold(field: FieldInfo) -> bool:
    return not _harmless(field.metadata) or _may_hold_datetime(field.annotation, set())


def _harmless(metadata: Iterable[object]) -> bool:
    # Constraints and markers keep the type; a validator or serializer may return anything.
    return not any(
        isinstance(m, _TYPE_CHANGERS) or hasattr(m, "__get_pydantic_core_schema__")
        for m in metadata
    )


def _may_hold_datetime(annotation: object, seen: set[type[BaseModel]]) -> bool:
    """Whether a value of type ``annotation`` may be or hold a datetime, as validated or dumped."""
    if annotation is None or annotation is type(None):
        return False
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *metadata = get_args(annotation)
        return not _harmless(metadata) or _may_hold_datetime(inner, seen)
    if origin is Literal:
        return False
    if origin in _CONTAINERS:
        return any(_may_hold_datetime(a, seen) for a in get_args(annotation) if a is not ...)
    if origin is not None or not isinstance(annotation, type):
        return True  # Any, a type variable, an unresolved name, another generic: cannot tell
    if issubclass(annotation, datetime):
        return True
    if issubclass(annotation, _LEAVES):
        return False
    if issubclass(annotation, BaseModel):
        return _model_may_hold_datetime(annotation, seen)
    return True  # a bare list or dict, a dataclass, a TypedDict, any other class


def _model_may_hold_datetime(model: type[BaseModel], seen: set[type[BaseModel]]) -> bool:
    if model in seen:  # a recursive model: its fields are being looked at already
        return False
    seen.add(model)
    decorators = model.__pydantic_decorators__
    if decorators.model_serializers or decorators.field_serializers or model.model_computed_fields:
        return True
    if model.model_config.get("extra") == "allow":
        return True  # its extra values can be anything, datetimes included
    return any(
        not _harmless(field.metadata) or _may_hold_datetime(field.annotation, seen)
        for field in model.model_fields.values()
    )


# --- declaration checks ----------------------------------------------------------------------


def _define(
    cls: type[Model],
    *,
    type_name: str | None,
    version: str | None,
    indexes: Mapping[str, Sequence[str]] | None,
    abstract: bool,
) -> ModelInfo | None:
    name = cls.__qualname__
    _check_fields(cls)
    markers = _collect_markers(cls)
    upgrades = _declared_upgrades(cls)
    if abstract:
        if type_name is not None or version is not None or indexes or upgrades:
            raise _definition_error(
                cls, "an abstract model takes no type_name, version, indexes or upgrades"
            )
        return None
    if type_name is None or version is None:
        raise _definition_error(
            cls,
            "a model needs type_name= and version= (class Fruit(Model, type_name='fruit', "
            "version='1.0')), or abstract=True for a base of models",
        )
    if not isinstance(type_name, str) or not _TYPE_NAME_RE.fullmatch(type_name):
        raise _definition_error(cls, f"type_name must match [a-z][a-z0-9_]*, not {type_name!r}")
    parsed_version = _parse_version(name, version)
    return ModelInfo(
        type_name=type_name,
        version=parsed_version,
        type_string=format_type(type_name, parsed_version),
        indexes=_build_indexes(cls, type_name, markers, indexes or {}),
        upgrades=_check_upgrade_chain(cls, parsed_version, upgrades),
        markers=markers,
    )


def _definition_error(cls: type[Model], problem: str) -> ModelDefinitionError:
    return ModelDefinitionError(f"{cls.__qualname__}: {problem}", model=cls.__qualname__)


def _check_fields(cls: type[Model]) -> None:
    if not cls.__pydantic_complete__ and not cls.model_config.get("defer_build"):
        raise _definition_error(
            cls, "some field annotations could not be resolved: define the types they name first"
        )
    own = inspect.get_annotations(cls).keys() & _BASE_FIELDS
    if own:
        raise _definition_error(cls, f"fields {sorted(own)} are Model's own; choose other names")
    if cls.__private_attributes__:
        raise _definition_error(
            cls,
            f"field names must not start with '_' (CouchDB reserves them): "
            f"{sorted(cls.__private_attributes__)}",
        )
    for field_name in (*cls.model_fields, *cls.model_computed_fields):
        if field_name == "type":
            raise _definition_error(cls, f"a field must not be called {field_name!r}")
    for field_name, field in cls.model_fields.items():
        aliases = {field.alias, field.validation_alias, field.serialization_alias} - {None}
        if aliases - {field_name}:
            raise _definition_error(
                cls, f"field {field_name!r} has an alias: not supported, the key is the field name"
            )


def _collect_markers(cls: type[BaseModel]) -> tuple[tuple[str, FieldMarker], ...]:
    markers: list[tuple[str, FieldMarker]] = []
    for field_name, field in cls.model_fields.items():
        if _has_nested_marker(field.annotation):
            raise ModelDefinitionError(
                f"{cls.__qualname__}.{field_name}: put field markers on the outermost Annotated "
                "(Annotated[str | None, Indexed()], not Annotated[str, Indexed()] | None)",
                model=cls.__qualname__,
            )
        markers.extend((field_name, m) for m in field.metadata if isinstance(m, FieldMarker))
    return tuple(markers)


def _has_nested_marker(annotation: object, depth: int = 0) -> bool:
    if depth > 20:  # a recursive alias: give up rather than loop
        return False
    if get_origin(annotation) is Annotated:
        metadata = getattr(annotation, "__metadata__", ())
        if any(isinstance(m, FieldMarker) for m in metadata):
            return True
    return any(_has_nested_marker(arg, depth + 1) for arg in get_args(annotation))


def _build_indexes(
    cls: type[Model],
    type_name: str,
    markers: tuple[tuple[str, FieldMarker], ...],
    compound: Mapping[str, Sequence[str]],
) -> tuple[Index, ...]:
    declared: list[tuple[str, tuple[str, ...]]] = [
        (marker.name or field_name, (field_name,))
        for field_name, marker in markers
        if isinstance(marker, Indexed)
    ]
    declared += [(name, _compound_fields(cls, name, fields)) for name, fields in compound.items()]
    indexes: dict[str, Index] = {}
    for name, fields in declared:
        if not isinstance(name, str) or not _INDEX_NAME_RE.fullmatch(name):
            raise _definition_error(cls, f"index name must match [A-Za-z][A-Za-z0-9_]*: {name!r}")
        if name in indexes:
            raise _definition_error(cls, f"two indexes are called {name!r}")
        indexes[name] = Index(name=name, fields=fields, view_name=f"{type_name}_by_{name}")
    return tuple(indexes.values())


def _compound_fields(cls: type[Model], name: str, fields: Sequence[str]) -> tuple[str, ...]:
    if isinstance(fields, str) or not fields:
        raise _definition_error(cls, f"index {name!r} needs a tuple of field names, not {fields!r}")
    result = tuple(fields)
    for field_name in result:
        if field_name not in cls.model_fields or field_name in _BASE_FIELDS:
            raise _definition_error(cls, f"index {name!r} names an unknown field {field_name!r}")
    if len(set(result)) != len(result):
        raise _definition_error(cls, f"index {name!r} names a field twice: {result}")
    return result


def _declared_upgrades(cls: type[Model]) -> list[tuple[str, str, UpgradeFunction]]:
    found = []
    for value in vars(cls).values():
        function = getattr(value, "__func__", None)
        span = getattr(function, _UPGRADE_ATTR, None)
        if isinstance(value, staticmethod) and span is not None:
            found.append((span[0], span[1], value.__func__))
    return found


def _check_upgrade_chain(
    cls: type[Model], current: Version, declared: list[tuple[str, str, UpgradeFunction]]
) -> tuple[UpgradeStep, ...]:
    name = cls.__qualname__
    steps: dict[Version, UpgradeStep] = {}
    for from_text, to_text, function in declared:
        step = UpgradeStep(_parse_version(name, from_text), _parse_version(name, to_text), function)
        span = f"{from_text} to {to_text}"
        if not step.from_version < step.to_version <= current:
            raise _definition_error(
                cls, f"upgrade from {span}: versions must rise, up to {_version_str(current)}"
            )
        if step.from_version in steps:
            raise _definition_error(cls, f"two upgrades start from {from_text}")
        steps[step.from_version] = step
    for step in steps.values():
        if step.to_version != current and step.to_version not in steps:
            raise _definition_error(
                cls,
                f"no upgrade from {_version_str(step.to_version)}: the chain stops before "
                f"{_version_str(current)}",
            )
    return tuple(steps[version] for version in sorted(steps))


# --- sets of models --------------------------------------------------------------------------


class ModelSet:
    """An immutable set of concrete model classes, as a database handle is given.

    Checks that no two models share a ``type_name`` or a view name, and finds the model of a
    ``type`` string for reading mixed collections (``_all_docs``, ``_changes``).
    """

    __slots__ = ("_by_type_name", "_models")

    def __init__(self, *models: type[Model]) -> None:
        """Raises :class:`ModelDefinitionError` for an abstract model, a class that is not a
        :class:`Model`, or two models claiming one type name or view name."""
        unique = tuple(dict.fromkeys(models))
        by_type_name: dict[str, type[Model]] = {}
        by_view: dict[str, type[Model]] = {}
        for model in unique:
            info = _concrete_info(model)
            _claim(by_type_name, info.type_name, model, "type_name")
            for view in info.view_names:
                _claim(by_view, view, model, "view")
        self._models = unique
        self._by_type_name = MappingProxyType(by_type_name)

    def __iter__(self) -> Iterator[type[Model]]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, model: object) -> bool:
        return model in self._models

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelSet):
            return NotImplemented
        return set(self._models) == set(other._models)

    def __hash__(self) -> int:
        return hash(frozenset(self._models))

    def __repr__(self) -> str:
        return f"ModelSet({', '.join(m.__qualname__ for m in self._models)})"

    def model_for_type(self, type_string: object, *, doc_id: str | None = None) -> type[Model]:
        """Return the model of a document ``type`` (any version of it).

        Raises :class:`WrongTypeError` if the type is malformed or no model of the set has it.
        """
        parsed = parse_type(type_string)
        model = self._by_type_name.get(parsed[0]) if parsed is not None else None
        if model is None:
            known = ", ".join(sorted(self._by_type_name)) or "none"
            raise WrongTypeError(
                f"document {doc_id!r} has type {type_string!r}, which no model reads "
                f"(type names: {known})",
                doc_id=doc_id,
                found=type_string,
            )
        return model

    def from_doc(self, doc: Mapping[str, Any]) -> Model:
        """Read a document as whichever model of the set its ``type`` names.

        Raises what :meth:`model_for_type` and :meth:`Model.from_doc` raise.
        """
        return self.model_for_type(doc.get("type"), doc_id=_doc_id(doc)).from_doc(doc)


def _concrete_info(model: object) -> ModelInfo:
    if not (isinstance(model, type) and issubclass(model, Model)):
        raise ModelDefinitionError(f"not a Model class: {model!r}", model=repr(model))
    return model.couch_info()


def _claim(claims: dict[str, type[Model]], key: str, model: type[Model], what: str) -> None:
    other = claims.setdefault(key, model)
    if other is not model:
        raise ModelDefinitionError(
            f"{other.__qualname__} and {model.__qualname__} both claim the {what} {key!r}",
            model=model.__qualname__,
        )
