"""The plain-Python lane of simple models (``_fastlane.py``) against pydantic, its oracle.

``Model.to_doc`` and the store's ``_checked_doc`` (what ``db.save`` writes and returns) answer
through ``Model.__couch_fast__`` instead of pydantic when they can; ``Model.from_doc`` reads a
current document with no keys but the model's by a quicker path than others, held to the same
standard against its general path. These tests prove that a class
gets a lane only when every field is of a covered type and nothing of its own (config,
validators, serializers, hooks, constraints) could act differently; and that, for valid and for
odd values alike, every answer with the lane is the one pydantic gives without it: the same
documents, the same models (key order, value types, tzinfo classes, fields set), or the same
error with the same message.
"""

from __future__ import annotations

import copy
import enum
import itertools
import re
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal, Union, cast, get_args, get_origin
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from annotated_types import Gt
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    PlainSerializer,
    computed_field,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import CoreSchema, TzInfo, core_schema

import tor_async_couchdb as tac
from tor_async_couchdb._models import current_models
from tor_async_couchdb._store._mapper import checked_doc as _checked_doc
from tor_async_couchdb._store._mapper import checked_docs as _checked_docs

PARIS = ZoneInfo("Europe/Paris")
AT = datetime(2026, 11, 27, 12, 30, 1, 5, tzinfo=timezone(timedelta(hours=5, minutes=30)))
NAIVE = datetime(2026, 11, 27, 12, 30)
BASE_FIELDS = ("id", "rev", "tombstone")


class Hue(enum.Enum):
    RED = "red"
    GREEN = "grün"
    BLANK = ""


class Mood(enum.StrEnum):
    CALM = "calm"
    GLAD = "glad"


class Size(enum.IntEnum):
    SMALL = -1
    LARGE = 2**40


class Rank(enum.Enum):
    ZERO = 0
    ONE = 1


class Kinds(tac.Model, type_name="fastlane_kinds", version="1.0"):
    """A field of every kind the lane covers."""

    text: Annotated[str, tac.Indexed()]
    count: int
    ratio: float
    flag: bool
    price: Decimal
    at: datetime
    hue: Hue
    mood: Mood
    size: Size
    rank: Rank
    maybe_text: str | None = None
    maybe_count: int | None = None
    maybe_ratio: float | None = None
    maybe_flag: bool | None = None
    maybe_price: Decimal | None = None
    maybe_at: datetime | None = None
    maybe_hue: Hue | None = None
    maybe_size: Size | None = None
    texts: list[str] = Field(default_factory=list)
    counts: list[int] = Field(default_factory=list)
    ratios: list[float] = Field(default_factory=list)
    flags: list[bool] = Field(default_factory=list)
    prices: list[Decimal] = Field(default_factory=list)
    ats: list[datetime] = Field(default_factory=list)
    hues: list[Hue] = Field(default_factory=list)
    sizes: list[Size | None] = Field(default_factory=list)
    maybe_ats: list[datetime | None] = Field(default_factory=list)
    text_by_key: dict[str, str] = Field(default_factory=dict)
    count_by_key: dict[str, int | None] = Field(default_factory=dict)
    price_by_key: dict[str, Decimal] = Field(default_factory=dict)
    at_by_key: dict[str, datetime] = Field(default_factory=dict)
    mood_by_key: dict[str, Mood | None] = Field(default_factory=dict)


OWN_FIELDS = tuple(name for name in Kinds.model_fields if name not in BASE_FIELDS)
CONTAINERS = tuple(
    name for name in OWN_FIELDS if get_origin(Kinds.model_fields[name].annotation) in (list, dict)
)


def sample(**changes: Any) -> Kinds:
    """A valid Kinds with a value in every field (containers not empty)."""
    values: dict[str, Any] = {
        "id": "k1",
        "text": "naïve ☃",
        "count": -(2**70),
        "ratio": -0.0,
        "flag": True,
        "price": Decimal("19.90"),
        "at": AT,
        "hue": Hue.GREEN,
        "mood": Mood.GLAD,
        "size": Size.LARGE,
        "rank": Rank.ZERO,
        "maybe_at": datetime(2026, 3, 29, 2, 30, tzinfo=PARIS),
        "texts": ["a", ""],
        "counts": [0, 2**64],
        "ratios": [1.5, 5e-324],
        "flags": [False],
        "prices": [Decimal("1E+2"), Decimal("-0")],
        "ats": [AT, datetime(2026, 1, 1, tzinfo=UTC)],
        "hues": [Hue.RED],
        "sizes": [None, Size.SMALL],
        "maybe_ats": [None, AT],
        "text_by_key": {"b": "x", "a": "y"},
        "count_by_key": {"n": None, "m": 3},
        "price_by_key": {"p": Decimal("0.000")},
        "at_by_key": {"t": AT},
        "mood_by_key": {"m": Mood.CALM, "n": None},
    }
    return Kinds(**{**values, **changes})


# --- comparing the lanes ---------------------------------------------------------------------


def shape(value: object) -> object:
    """``value`` with the exact type of everything in it, for comparing the lanes: two values
    of equal shapes are alike in every way a caller can see (``repr`` tells -0.0 from 0.0,
    Decimal("1.0") from Decimal("1.00"), and names a datetime's tzinfo and fold)."""
    if isinstance(value, BaseModel):
        return (
            type(value),
            [(name, shape(item)) for name, item in value.__dict__.items()],
            sorted(value.model_fields_set),
            value.__pydantic_extra__,
            value.__pydantic_private__,
        )
    if isinstance(value, list | tuple):
        return (type(value), [shape(item) for item in value])
    if isinstance(value, dict):
        return (type(value), [(shape(key), shape(item)) for key, item in value.items()])
    if isinstance(value, datetime):
        return (type(value), repr(value), type(value.tzinfo))
    return (type(value), repr(value))


def outcome(action: Callable[[], object]) -> tuple[object, ...]:
    """The shape of what ``action`` returns, or the type and message of what it raises."""
    try:
        return ("returned", shape(action()))
    except Exception as exc:
        return ("raised", type(exc), str(exc))


@contextmanager
def pydantic_lane(model: type[tac.Model]) -> Iterator[None]:
    """Without the class's plan: every call takes the pydantic path."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(model, "__couch_fast__", None)
        yield


def in_both_lanes(
    model: type[tac.Model], action: Callable[[], object]
) -> tuple[tuple[object, ...], tuple[object, ...]]:
    """The outcome of ``action`` with ``model``'s plan, then without it."""
    assert model.__couch_fast__ is not None  # else both runs would take the pydantic path
    with_lane = outcome(action)
    with pydantic_lane(model):
        without_lane = outcome(action)
    return with_lane, without_lane


def in_both_read_paths(
    model: type[tac.Model], doc: dict[str, Any]
) -> tuple[tuple[object, ...], tuple[object, ...]]:
    """The outcome of ``model.from_doc(doc)`` by its quick path (when the document's keys
    allow it), then by its general path (no document fits an empty key set)."""
    with_quick = outcome(lambda: model.from_doc(copy.deepcopy(doc)))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(model, "__couch_doc_keys__", frozenset())
        general = outcome(lambda: model.from_doc(copy.deepcopy(doc)))
    return with_quick, general


def checked(model: tac.Model) -> tuple[dict[str, Any], tac.Model]:
    """``_checked_doc(model)``, an id it made (new on every call) replaced by ``"new"``."""
    doc, saved = _checked_doc(model)
    if model.id is None:
        assert re.fullmatch(r"[0-9a-f]{32}", doc["_id"])
        assert saved.id == doc["_id"]
        doc["_id"] = saved.__dict__["id"] = "new"
    return doc, saved


# --- strategies ------------------------------------------------------------------------------

TEXTS = st.text(max_size=6) | st.text(st.characters(exclude_categories=()), max_size=3)
# Keys that UTF-8 can encode: the others have a test of their own (see the end of the module).
KEYS = st.text(st.characters(codec="utf-8"), max_size=4)
INTS = st.integers() | st.sampled_from([2**63, -(2**63) - 1, 2**64, -(10**40)])
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
DECIMALS = (
    st.builds(
        lambda sign, digits, exponent: Decimal((sign, tuple(digits), exponent)),
        st.integers(0, 1),
        st.lists(st.integers(0, 9), min_size=1, max_size=40),
        st.integers(-40, 40),
    )
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.sampled_from([Decimal("1E+2"), Decimal("-0"), Decimal("0.000"), Decimal("-1.5E-7")])
)
OFFSETS = st.timedeltas(
    min_value=-timedelta(hours=23, minutes=59, seconds=59),
    max_value=timedelta(hours=23, minutes=59, seconds=59),
)
ZONES = (
    st.just(UTC)
    | st.builds(timezone, OFFSETS)
    | st.builds(TzInfo, st.integers(-86399, 86399))
    | st.sampled_from([PARIS, ZoneInfo("America/St_Johns"), ZoneInfo("Asia/Kathmandu")])
)
# A day short of datetime's ends: out of range once in UTC (see the overflow test below).
DATETIMES = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=ZONES
)
SCALAR_VALUES: dict[object, st.SearchStrategy[Any]] = {
    str: TEXTS,
    int: INTS,
    float: FLOATS,
    bool: st.booleans(),
    Decimal: DECIMALS,
    datetime: DATETIMES,
}


def values_of(annotation: object) -> st.SearchStrategy[Any]:
    """Valid values of a field type the lane covers."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        (inner,) = (arg for arg in args if arg is not type(None))
        return st.none() | values_of(inner)
    if origin is list:
        return st.lists(values_of(args[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(KEYS, values_of(args[1]), max_size=3)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return st.sampled_from(annotation)
    return SCALAR_VALUES[annotation]


def kinds(ids: st.SearchStrategy[str | None]) -> st.SearchStrategy[Kinds]:
    """Valid Kinds models, with ids from ``ids``."""
    fields = {name: values_of(Kinds.model_fields[name].annotation) for name in OWN_FIELDS}
    return st.fixed_dictionaries(
        {
            "id": ids,
            "rev": st.none() | st.text(max_size=6),
            "tombstone": st.booleans(),
            **fields,
        }
    ).map(lambda values: Kinds(**values))


VALID_IDS = st.text(st.characters(codec="utf-8"), min_size=1, max_size=6).filter(
    lambda text: not text.startswith("_")
)
MODELS = kinds(st.none() | VALID_IDS)
MODELS_WITH_IDS = kinds(VALID_IDS)

# What a JSON document can hold (no NaN or infinities: JSON has none).
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=5,
)
# Values close to valid ones: the forms pydantic reads loosely or refuses, enum values of the
# wrong type, bools for ints, special and empty ids.
NEAR_MISSES = st.sampled_from(
    [
        "3.25",
        " 3.25",
        "+3",
        "1e3",
        "1E+2",
        "1_000",
        "NaN",
        "-0",
        "2026-11-27T12:00:00.000000Z",
        "2026-11-27T12:00:00Z",
        "2026-11-27T12:00:00.000000+01:00",
        "2026-13-27T12:00:00.000000Z",
        "2026-11-27 12:00:00.000000Z",
        "2026-11-27T24:00:00.000000Z",
        "٢٠٢٦-11-27T12:00:00.000000Z",
        "red",
        "grün",
        "calm",
        "-1",
        "true",
        "_design/x",
        "_local/x",
        "_x",
        "",
        "\ud800",
        True,
        False,
        0,
        1,
        -1,
        2**70,
        1.0,
        -0.0,
    ]
)
ODD_JSON = (
    JSON
    | NEAR_MISSES
    | st.lists(NEAR_MISSES, max_size=3)
    | st.dictionaries(st.text(max_size=2), NEAR_MISSES, max_size=2)
)
DOC_KEYS = st.sampled_from(
    [*OWN_FIELDS, "tombstone", "_id", "_rev", "type", "_conflicts", "id", "rev"]
) | st.text(max_size=4)
DROP = "<drop the key>"  # as a change's value: remove the key instead
DOC_CHANGES = st.tuples(DOC_KEYS, ODD_JSON | st.just(DROP))


class Shout(str):
    """A str subclass: not a str for the lane."""


class Other(enum.Enum):
    RED = "red"


# Python values a model may hold after model_construct or an in-place change.
ODD_PYTHON = st.sampled_from(
    [
        NAIVE,
        AT,
        date(2026, 1, 1),
        Decimal("NaN"),
        Decimal("Infinity"),
        Decimal("1.5"),
        float("inf"),
        Shout("red"),
        ("a", "b"),
        {1: "a"},
        b"red",
        Hue.RED,
        Mood.CALM,
        Size.LARGE,
        Rank.ONE,
        Other.RED,
        [NAIVE],
        [Decimal("NaN")],
        [Shout("x")],
        {"k": NAIVE},
    ]
)
MODEL_CHANGES = st.tuples(
    st.sampled_from([*OWN_FIELDS, "rev", "tombstone"]), ODD_JSON | ODD_PYTHON | st.just(DROP)
) | st.tuples(st.just("id"), st.sampled_from(["_design/x", "_local/x", "_x", "", "\ud800", 5]))


def changed(values: dict[str, Any], changes: list[tuple[str, Any]]) -> None:
    """Apply ``changes`` to ``values`` in place: set each key, or drop it."""
    for key, value in changes:
        if value is DROP:
            values.pop(key, None)
        else:
            values[key] = value


# --- which models get a lane -----------------------------------------------------------------


def test_a_model_with_every_covered_kind_gets_a_plan() -> None:
    assert Kinds.__couch_fast__ is not None


_declared = itertools.count()


def model_with(annotation: object) -> type[tac.Model]:
    """A new concrete model with one field ``x`` of type ``annotation``."""
    number = next(_declared)

    def body(namespace: dict[str, Any]) -> None:
        namespace["__annotations__"] = {"x": annotation}
        namespace["__module__"] = __name__

    keywords = {"type_name": f"fastlane_declared_{number}", "version": "1.0"}
    declared = types.new_class(f"Declared{number}", (tac.Model,), keywords, body)
    return cast("type[tac.Model]", declared)


@dataclass
class Note:
    """Metadata pydantic ignores; a dataclass with eq and without frozen cannot be hashed."""

    text: str


class Mixed(enum.Enum):
    ONE = 1
    TWO = "two"


class Ratio(enum.Enum):
    HALF = 0.5


class Permission(enum.Flag):
    READ = 1
    WRITE = 2


class Bits(enum.IntFlag):
    LOW = 1


class Inner(BaseModel):
    n: int


@pytest.mark.parametrize(
    "annotation",
    [
        pytest.param(Literal["a", "b"], id="Literal"),
        pytest.param(UUID, id="UUID"),
        pytest.param(date, id="date"),
        pytest.param(bytes, id="bytes"),
        pytest.param(Any, id="Any"),
        pytest.param(timedelta, id="timedelta"),
        pytest.param(Inner, id="nested-model"),
        pytest.param(set[str], id="set"),
        pytest.param(frozenset[str], id="frozenset"),
        pytest.param(tuple[int, ...], id="tuple"),
        pytest.param(int | str, id="union"),
        pytest.param(list[int] | None, id="optional-list"),
        pytest.param(dict[str, int] | None, id="optional-dict"),
        pytest.param(list[list[int]], id="nested-list"),
        pytest.param(dict[str, list[int]], id="dict-of-lists"),
        pytest.param(list[Inner], id="list-of-models"),
        pytest.param(dict[int, str], id="int-keys"),
        pytest.param(dict[Hue, str], id="enum-keys"),
        pytest.param(Mixed, id="mixed-enum"),
        pytest.param(Ratio, id="float-enum"),
        pytest.param(Permission, id="flag"),
        pytest.param(Bits, id="int-flag"),
        pytest.param(list[Annotated[int, Gt(0)]], id="constrained-item"),
        pytest.param(list[Annotated[str, Note("unhashable")]], id="item-with-unhashable-metadata"),
        pytest.param(Annotated[int, Gt(0)] | None, id="constrained-optional"),
    ],
)
def test_a_field_type_the_lane_does_not_cover_gets_no_plan(annotation: object) -> None:
    assert model_with(annotation).__couch_fast__ is None


class GreaterThan(tac.Model, type_name="fastlane_gt", version="1.0"):
    x: int = Field(default=1, gt=0)


class Strict(tac.Model, type_name="fastlane_strict", version="1.0"):
    x: int = Field(default=1, strict=True)


class Noted(tac.Model, type_name="fastlane_noted", version="1.0"):
    x: Annotated[str, "a note"] = ""


class AfterChecked(tac.Model, type_name="fastlane_after", version="1.0"):
    x: Annotated[int, AfterValidator(abs)] = 0


class PlainWritten(tac.Model, type_name="fastlane_plain_written", version="1.0"):
    x: Annotated[int, PlainSerializer(str)] = 0


class FieldChecked(tac.Model, type_name="fastlane_field_checked", version="1.0"):
    x: int = 0

    @field_validator("x")
    @classmethod
    def _positive(cls, value: int) -> int:
        return abs(value)


class ModelChecked(tac.Model, type_name="fastlane_model_checked", version="1.0"):
    x: int = 0

    @model_validator(mode="after")
    def _fine(self) -> ModelChecked:
        return self


class FieldWritten(tac.Model, type_name="fastlane_field_written", version="1.0"):
    x: int = 0

    @field_serializer("x")
    def _as_text(self, value: int) -> str:
        return str(value)


class ModelWritten(tac.Model, type_name="fastlane_model_written", version="1.0"):
    x: int = 0

    @model_serializer
    def _as_dict(self) -> dict[str, Any]:
        return {"x": self.x}


class Computed(tac.Model, type_name="fastlane_computed", version="1.0"):
    x: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def double(self) -> int:
        return 2 * self.x


class Configured(tac.Model, type_name="fastlane_configured", version="1.0"):
    model_config = ConfigDict(str_strip_whitespace=True)
    x: str = ""


class OwnInit(tac.Model, type_name="fastlane_own_init", version="1.0"):
    x: int = 0

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)


class PostInit(tac.Model, type_name="fastlane_post_init", version="1.0"):
    x: int = 0

    def model_post_init(self, context: Any, /) -> None:
        pass


class Excluded(tac.Model, type_name="fastlane_excluded", version="1.0"):
    x: int = Field(default=0, exclude=True)


class OwnSchema(tac.Model, type_name="fastlane_own_schema", version="1.0"):
    x: int = 0

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[BaseModel], handler: GetCoreSchemaHandler, /
    ) -> CoreSchema:
        return handler(source)


class OwnToDoc(tac.Model, type_name="fastlane_own_to_doc", version="1.0"):
    name: str = "Hi"

    def to_doc(self) -> dict[str, Any]:
        return {**super().to_doc(), "name_lower": self.name.lower()}


class OwnValidate(tac.Model, type_name="fastlane_own_validate", version="1.0"):
    name: str = " hi "

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> OwnValidate:
        return super().model_validate({**obj, "name": obj["name"].strip()}, **kwargs)


class OwnJSONFields(tac.Model, type_name="fastlane_own_json_fields", version="1.0"):
    n: int = 2

    def _json_fields(self) -> dict[str, Any]:
        return {**super()._json_fields(), "n": self.n * 10}


class UnderOwnToDoc(OwnToDoc, type_name="fastlane_under_own_to_doc", version="1.0"):
    extra: int = 0


class Sealed(tac.FieldMarker):
    """A marker that takes part in serialization: the value is written its own way."""

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(
            lambda value: value,
            handler(source),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda value: f"sealed:{value}"
            ),
        )


class SealedField(tac.Model, type_name="fastlane_sealed_field", version="1.0"):
    secret: Annotated[str, Sealed()] = "abc"


@pytest.mark.parametrize(
    "model",
    [
        OwnToDoc,
        OwnValidate,
        OwnJSONFields,
        UnderOwnToDoc,
        SealedField,
        GreaterThan,
        Strict,
        Noted,
        AfterChecked,
        PlainWritten,
        FieldChecked,
        ModelChecked,
        FieldWritten,
        ModelWritten,
        Computed,
        Configured,
        OwnInit,
        PostInit,
        Excluded,
        OwnSchema,
    ],
    ids=lambda model: model.__name__,
)
def test_a_model_with_behaviour_of_its_own_gets_no_plan(model: type[tac.Model]) -> None:
    assert model.__couch_fast__ is None


@pytest.mark.parametrize(
    ("model", "key", "written"),
    [
        (OwnToDoc, "name_lower", "hi"),
        (OwnValidate, "name", "hi"),
        (OwnJSONFields, "n", 20),
        (SealedField, "secret", "sealed:abc"),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_a_save_writes_what_the_models_own_code_makes(
    model: type[tac.Model], key: str, written: object
) -> None:
    doc, _ = _checked_doc(model(id="x1"))
    assert doc[key] == written


@dataclass(frozen=True, slots=True)
class Unknown(tac.FieldMarker):
    """A marker with no schema, which the lane does not know (as a codec's marker would be)."""


@dataclass(frozen=True, slots=True)
class IndexedMore(tac.Indexed):
    """A subclass of a known marker: it may mean more than ``Indexed`` does."""


class UnknownMarked(tac.Model, type_name="fastlane_unknown_marked", version="1.0"):
    secret: Annotated[str, tac.Indexed(), Unknown()] = "plain"


class SubclassMarked(tac.Model, type_name="fastlane_subclass_marked", version="1.0"):
    secret: Annotated[str, IndexedMore()] = "plain"


class IndexedOnly(tac.Model, type_name="fastlane_indexed_only", version="1.0"):
    secret: Annotated[str, tac.Indexed()] = "plain"


def test_a_field_marker_the_lane_does_not_know_keeps_the_model_out_of_it() -> None:
    # A codec's marker (encryption, hashing) must never be written by the lane in plain text.
    assert UnknownMarked.__couch_fast__ is None
    assert SubclassMarked.__couch_fast__ is None
    assert IndexedOnly.__couch_fast__ is not None


class Plain(tac.Model, type_name="fastlane_plain", version="1.0"):
    x: int = 0


class CheckedPlain(Plain, type_name="fastlane_checked_plain", version="1.0"):
    @field_validator("x")
    @classmethod
    def _positive(cls, value: int) -> int:
        return abs(value)


def test_a_subclass_that_adds_a_validator_gets_no_plan() -> None:
    assert Plain.__couch_fast__ is not None
    assert CheckedPlain.__couch_fast__ is None


class Stamped(tac.Model, abstract=True):
    at: datetime = AT


class Stamp(Stamped, type_name="fastlane_stamp", version="1.0"):
    label: str = ""


def test_an_abstract_model_has_no_plan_and_its_simple_subclass_has_one() -> None:
    assert Stamped.__couch_fast__ is None
    assert Stamp.__couch_fast__ is not None


# --- valid models: the same in both lanes ----------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(MODELS)
def test_the_lane_takes_every_valid_model(model: Kinds) -> None:
    # Else the parity tests below would compare pydantic with itself.
    plan = Kinds.__couch_fast__
    assert plan is not None
    assert plan.doc(model.__dict__) is not None
    assert plan.checked(model.__dict__, {}) is not None


@settings(max_examples=200, deadline=None)
@given(MODELS)
def test_to_doc_is_the_same_in_both_lanes(model: Kinds) -> None:
    with_lane, without_lane = in_both_lanes(Kinds, model.to_doc)
    assert with_lane[0] == "returned"
    assert with_lane == without_lane


@settings(max_examples=200, deadline=None)
@given(MODELS)
def test_checked_doc_is_the_same_in_both_lanes(model: Kinds) -> None:
    with_lane, without_lane = in_both_lanes(Kinds, lambda: checked(model))
    assert with_lane[0] == "returned"
    assert with_lane == without_lane


@settings(max_examples=200, deadline=None)
@given(MODELS)
def test_from_doc_of_a_saved_document_is_the_same_by_both_paths(model: Kinds) -> None:
    doc = {**model.to_doc(), "_rev": "1-abc"}
    assert doc.keys() <= Kinds.__couch_doc_keys__  # the quick path is taken
    quick, general = in_both_read_paths(Kinds, doc)
    assert quick[0] == "returned"
    assert quick == general


@pytest.mark.parametrize(
    "at",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),
    ],
)
def test_a_datetime_out_of_range_in_utc_fails_alike_in_both_lanes(at: datetime) -> None:
    model = sample(at=at)
    for action in (model.to_doc, lambda: _checked_doc(model)):
        with_lane, without_lane = in_both_lanes(Kinds, action)
        assert with_lane[0] == "raised"
        assert with_lane == without_lane


# --- odd values: the lane steps aside -------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(MODELS_WITH_IDS, st.lists(DOC_CHANGES, min_size=1, max_size=3))
def test_from_doc_of_a_changed_document_is_the_same_by_both_paths(
    model: Kinds, changes: list[tuple[str, Any]]
) -> None:
    doc = {**model.to_doc(), "_rev": "1-abc"}
    changed(doc, changes)
    quick, general = in_both_read_paths(Kinds, doc)
    assert quick == general


@settings(max_examples=300, deadline=None)
@given(MODELS_WITH_IDS, st.lists(MODEL_CHANGES, min_size=1, max_size=2))
def test_saving_a_model_holding_odd_values_is_the_same_in_both_lanes(
    model: Kinds, changes: list[tuple[str, Any]]
) -> None:
    # What model_construct or an in-place change can leave in a model.
    changed(model.__dict__, changes)
    with_lane, without_lane = in_both_lanes(Kinds, model.to_doc)
    assert with_lane == without_lane
    with_lane, without_lane = in_both_lanes(Kinds, lambda: _checked_doc(model))
    assert with_lane == without_lane


class Moment(datetime):
    """A datetime subclass: not a datetime for the lane."""


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("text", Shout("x")),
        ("text", Mood.CALM),
        ("count", True),
        ("count", 3.0),
        ("ratio", 1),
        ("ratio", True),
        ("flag", 1),
        ("price", 1.5),
        ("price", 2),
        ("price", "1.5"),
        ("at", Moment(2026, 1, 1, tzinfo=UTC)),
        ("at", date(2026, 1, 1)),
        ("at", "2026-11-27T12:00:00Z"),
        ("hue", "red"),
        ("mood", "calm"),
        ("size", -1),
        ("rank", True),
        ("maybe_count", False),
        ("texts", ("a",)),
        ("texts", [Shout("a")]),
        ("sizes", [Size.SMALL, -1]),
        ("ats", [Moment(2026, 1, 1, tzinfo=UTC)]),
        ("text_by_key", {Shout("k"): "x"}),
        ("mood_by_key", {"m": "calm"}),
        ("rev", Shout("1-a")),
        ("tombstone", 1),
    ],
)
def test_a_value_of_a_near_type_is_saved_as_pydantic_saves_it(field: str, value: object) -> None:
    # What model_construct or an in-place change can leave: converted or refused by pydantic.
    model = sample()
    model.__dict__[field] = value
    for action in (model.to_doc, lambda: _checked_doc(model)):
        with_lane, without_lane = in_both_lanes(Kinds, action)
        assert with_lane == without_lane


# --- the saved copy --------------------------------------------------------------------------


def test_the_saved_copy_shares_no_list_or_dict_with_the_model_or_the_doc() -> None:
    model = sample()
    doc, saved = _checked_doc(model)
    before = shape(saved)
    for name in CONTAINERS:
        for container in (getattr(model, name), doc[name]):
            if isinstance(container, list):
                container.append(None)
            else:
                container["new"] = None
    assert shape(saved) == before


def test_to_doc_shares_no_list_or_dict_with_the_model() -> None:
    model = sample()
    before = shape(model)
    doc = model.to_doc()
    for name in CONTAINERS:
        doc[name].clear()
    assert shape(model) == before


def assert_refused(model: Kinds, field: str) -> None:
    """Saving ``model`` fails on ``field`` before any request, as it does without the lane."""
    with pytest.raises(tac.ModelValidationError, match=rf"\b{field}\b"):
        _checked_doc(model)
    with_lane, without_lane = in_both_lanes(Kinds, lambda: _checked_doc(model))
    assert with_lane == without_lane


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("texts", 3),
        ("counts", "three"),
        ("ratios", float("nan")),
        ("flags", "maybe"),
        ("prices", Decimal("NaN")),
        ("ats", NAIVE),
        ("hues", "blue"),
        ("sizes", 5),
        ("maybe_ats", "later"),
    ],
)
def test_a_list_changed_in_place_to_a_bad_value_is_refused(field: str, bad: object) -> None:
    model = sample()
    getattr(model, field).append(bad)
    assert_refused(model, field)


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("text_by_key", 3),
        ("count_by_key", "three"),
        ("price_by_key", "abc"),
        ("at_by_key", NAIVE),
        ("mood_by_key", "sad"),
    ],
)
def test_a_dict_changed_in_place_to_a_bad_value_is_refused(field: str, bad: object) -> None:
    model = sample()
    getattr(model, field)["bad"] = bad
    assert_refused(model, field)


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("text", 7),
        ("count", "three"),
        ("ratio", float("inf")),
        ("flag", "maybe"),
        ("price", Decimal("sNaN")),
        ("at", NAIVE),
        ("hue", Other.RED),
        ("size", 3),
        ("maybe_price", "1.5.1"),
        ("tombstone", "maybe"),
        ("id", "_design/x"),
        ("rev", 5),
    ],
)
def test_a_constructed_model_with_a_bad_value_is_refused(field: str, bad: object) -> None:
    values = sample().__dict__
    assert_refused(Kinds.model_construct(**{**values, field: bad}), field)


# --- enums with code of their own ------------------------------------------------------------


class Shade(enum.Enum):
    """An enum stored by its member names, through a core schema of its own."""

    LIGHT = "light"
    DARK = "dark"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Shade], handler: GetCoreSchemaHandler, /
    ) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            lambda value: value if isinstance(value, cls) else cls[value],
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda member: member.name
            ),
        )


class Paint(tac.Model, type_name="fastlane_paint", version="1.0"):
    shade: Shade


def test_an_enum_with_a_schema_of_its_own_is_written_as_pydantic_writes_it() -> None:
    paint = Paint(id="p1", shade=Shade.DARK)
    with pydantic_lane(Paint):
        expected = outcome(paint.to_doc), outcome(lambda: _checked_doc(paint))
    assert (outcome(paint.to_doc), outcome(lambda: _checked_doc(paint))) == expected


def test_a_dict_key_utf_8_cannot_encode_is_written_as_pydantic_writes_it() -> None:
    model = sample(text_by_key={"a\ud800": "x"})
    for action in (model.to_doc, lambda: _checked_doc(model)):
        with_lane, without_lane = in_both_lanes(Kinds, action)
        assert with_lane == without_lane


# --- batches (save_many): a field of every model at a time --------------------------------------


def one_at_a_time(models: list[Kinds]) -> list[tuple[dict[str, Any], tac.Model]]:
    return [checked(model) for model in models]


def as_a_batch(models: list[Kinds]) -> list[tuple[dict[str, Any], tac.Model]]:
    """``checked_docs(models)``, each id it made replaced by ``"new"`` (as :func:`checked`)."""
    found: list[tuple[dict[str, Any], tac.Model]] = list(_checked_docs(models))
    for model, (doc, saved) in zip(models, found, strict=True):
        if model.id is None:
            assert re.fullmatch(r"[0-9a-f]{32}", doc["_id"])
            assert saved.id == doc["_id"]
            doc["_id"] = saved.__dict__["id"] = "new"
    return found


def same_revs_and_tombstones(models: list[Kinds]) -> list[Kinds]:
    """``models`` made alike in what a batch must share: rev (here None) and tombstone."""
    return [model.model_copy(update={"rev": None, "tombstone": False}) for model in models]


@settings(max_examples=150, deadline=None)
@given(st.lists(MODELS, min_size=1, max_size=5))
def test_a_batch_of_valid_models_is_taken_whole(models: list[Kinds]) -> None:
    models = same_revs_and_tombstones(models)
    plan = Kinds.__couch_fast__
    assert plan is not None
    ids = [model.id or f"new{i}" for i, model in enumerate(models)]
    assert plan.checked_batch([model.__dict__ for model in models], ids) is not None


@settings(max_examples=200, deadline=None)
@given(st.lists(MODELS, min_size=1, max_size=5), st.booleans())
def test_a_batch_is_what_one_model_at_a_time_gives(models: list[Kinds], alike: bool) -> None:
    if alike:
        models = same_revs_and_tombstones(models)
    batch = outcome(lambda: as_a_batch(models))
    assert batch[0] == "returned"
    assert batch == outcome(lambda: one_at_a_time(models))
    with pydantic_lane(Kinds):
        assert batch == outcome(lambda: one_at_a_time(models))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(MODELS_WITH_IDS, min_size=2, max_size=4),
    st.integers(0, 3),
    st.lists(MODEL_CHANGES, min_size=1, max_size=2),
)
def test_a_batch_holding_an_odd_value_is_what_one_model_at_a_time_gives(
    models: list[Kinds], which: int, changes: list[tuple[str, Any]]
) -> None:
    models = same_revs_and_tombstones(models)
    changed(models[which % len(models)].__dict__, changes)
    assert outcome(lambda: as_a_batch(models)) == outcome(lambda: one_at_a_time(models))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("at", NAIVE),
        ("at", Moment(2026, 1, 1, tzinfo=UTC)),
        ("at", datetime(2026, 1, 1, tzinfo=timezone(timedelta(0)))),
        ("at", datetime(2026, 1, 1, tzinfo=PARIS)),
        ("maybe_at", None),
        ("price", Decimal("NaN")),
        ("price", Decimal("Infinity")),
        ("ratio", float("nan")),
        ("count", True),
        ("texts", ["a", Shout("b")]),
        ("texts", ("a",)),
        ("hue", Mood.CALM),
        ("maybe_text", Shout("x")),
        ("id", "_x"),
        ("id", ""),
        ("id", "a\ud800"),
        ("rev", "1-x"),
        ("tombstone", True),
    ],
)
def test_one_odd_value_in_a_batch_of_a_thousand(field: str, value: object) -> None:
    models = [sample(id=f"k{i}") for i in range(1000)]
    models[500].__dict__[field] = value
    assert outcome(lambda: as_a_batch(models)) == outcome(lambda: one_at_a_time(models))


def test_a_datetime_out_of_range_in_utc_fails_alike_in_a_batch() -> None:
    models = [
        sample(id="k1"),
        sample(id="k2", at=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))),
    ]
    batch = outcome(lambda: as_a_batch(models))
    assert batch[0] == "raised"
    assert batch == outcome(lambda: one_at_a_time(models))


def test_a_batch_shares_no_list_or_dict_with_the_models_or_the_docs() -> None:
    models = [sample(id=f"k{i}") for i in range(3)]
    found = _checked_docs(models)
    before = [shape(saved) for _, saved in found]
    for model, (doc, saved) in zip(models, found, strict=True):
        for name in CONTAINERS:
            assert getattr(saved, name) is not getattr(model, name)
            assert getattr(saved, name) is not doc[name]
            assert doc[name] is not getattr(model, name)
            for container in (getattr(model, name), doc[name]):
                if isinstance(container, list):
                    container.append(None)
                else:
                    container["added"] = None
    assert [shape(saved) for _, saved in found] == before


# --- reading a page: one validation of every document ----------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.lists(MODELS_WITH_IDS, min_size=1, max_size=5))
def test_a_page_read_in_one_validation_is_what_from_doc_of_each_gives(models: list[Kinds]) -> None:
    docs = [{**model.to_doc(), "_rev": "1-abc"} for model in models]
    page = current_models(Kinds, copy.deepcopy(docs))
    assert page is not None
    assert shape(page) == shape([Kinds.from_doc(doc) for doc in docs])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(MODELS_WITH_IDS, min_size=2, max_size=4),
    st.integers(0, 3),
    st.lists(DOC_CHANGES, min_size=1, max_size=3),
)
def test_a_page_holding_an_odd_document_is_left_to_from_doc(
    models: list[Kinds], which: int, changes: list[tuple[str, Any]]
) -> None:
    docs = [{**model.to_doc(), "_rev": "1-abc"} for model in models]
    changed(docs[which % len(docs)], changes)
    page = current_models(Kinds, copy.deepcopy(docs))
    one_by_one = outcome(lambda: [Kinds.from_doc(copy.deepcopy(doc)) for doc in docs])
    if page is not None:  # every document valid and current: the same models
        assert ("returned", shape(page)) == one_by_one
