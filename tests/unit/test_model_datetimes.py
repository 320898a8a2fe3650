"""Where datetimes can be: the naive check and the fixed UTC form follow them into any field.

Models check for naive datetimes, and write datetimes in the fixed form, only in the fields
whose type can hold one (decided when the class is created); these tests pin that nothing is
missed where a type hides a datetime: validators, serializers, computed fields, nesting,
recursion, subclasses.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal, Optional, TypedDict

import pydantic
import pytest
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    computed_field,
    field_serializer,
    model_serializer,
)

from tor_async_couchdb._exceptions import ModelValidationError
from tor_async_couchdb._models._model import Indexed, Model, _may_hold_datetime

AWARE = datetime(2026, 11, 27, 11, 36, 1, tzinfo=timezone(timedelta(hours=1)))
AWARE_TEXT = "2026-11-27T10:36:01.000000Z"
NAIVE = datetime(2026, 1, 1)


class Color(enum.Enum):
    RED = "red"


class Seen(BaseModel):
    at: datetime


class Tree(BaseModel):
    seen: Seen | None = None
    children: list[Tree] = Field(default_factory=list)


class Plain(BaseModel):
    name: str
    count: int


class Row(TypedDict):
    at: Any


@pytest.mark.parametrize(
    ("annotation", "may_hold"),
    [
        (str, False),
        (int, False),
        (bool, False),
        (Decimal, False),
        (Color, False),
        (date, False),
        (timedelta, False),
        (type(None), False),
        (list[str], False),
        (dict[str, int], False),
        (tuple[int, ...], False),
        (Optional[int], False),  # noqa: UP045 - the typing spelling, on purpose
        (Literal["a", "b"], False),
        (Annotated[str, Indexed()], False),
        (Annotated[int, Field(gt=0)], False),
        (Plain, False),
        (datetime, True),
        (datetime | None, True),
        (dict[str, datetime], True),
        (list[Seen], True),
        (Tree, True),
        (Any, True),
        (object, True),
        (list, True),
        (Row, True),
        (Annotated[str, AfterValidator(lambda v: v)], True),
        (Annotated[int, PlainSerializer(lambda v: v)], True),
    ],
)
def test_which_types_may_hold_a_datetime(annotation: object, may_hold: bool) -> None:
    assert _may_hold_datetime(annotation, set()) is may_hold


def _anything(value: object) -> object:
    return value


class Hidden(Model, type_name="hidden", version="1.0"):
    # A validator may return anything: the field counts as able to hold a datetime.
    text: Annotated[str, pydantic.PlainValidator(_anything)] = ""
    tree: Tree = Field(default_factory=Tree)
    count: int = 0


def test_a_naive_datetime_behind_a_validator_is_refused() -> None:
    with pytest.raises(ModelValidationError, match="text: datetime has no timezone"):
        Hidden(text=NAIVE)  # type: ignore[arg-type]
    assert Hidden(text=AWARE).text == AWARE  # type: ignore[arg-type]


def test_recursive_models_are_checked_all_the_way_down() -> None:
    deep = {"children": [{}, {"children": [{"seen": {"at": NAIVE}}]}]}
    with pytest.raises(ModelValidationError, match=r"tree: datetime at children\.1\.children"):
        Hidden(tree=deep)  # type: ignore[arg-type]
    model = Hidden(tree={"children": [{"seen": {"at": AWARE}}]})  # type: ignore[arg-type]
    assert model.to_doc()["tree"] == {
        "seen": None,
        "children": [{"seen": {"at": AWARE_TEXT}, "children": []}],
    }


class Base(Model, type_name="base", version="1.0"):
    name: str = ""


class Dated(Base, type_name="dated", version="1.0"):
    # A datetime field added by a subclass of a model that had none.
    on: datetime = AWARE


class Stamped(Model, abstract=True):
    stamped_on: datetime = AWARE


class Stamp(Stamped, type_name="stamp", version="1.0"):
    other_on: datetime | None = None


def test_datetime_fields_of_subclasses_are_checked() -> None:
    with pytest.raises(ModelValidationError, match="on: datetime has no timezone"):
        Dated(on=NAIVE)
    with pytest.raises(ModelValidationError, match="stamped_on: datetime has no timezone"):
        Stamp(stamped_on=NAIVE)
    with pytest.raises(ModelValidationError, match="other_on: datetime has no timezone"):
        Stamp(other_on=NAIVE)
    model = Stamp(other_on=AWARE)
    with pytest.raises(ModelValidationError, match="other_on: datetime has no timezone"):
        model.other_on = NAIVE
    assert model.to_doc()["stamped_on"] == model.to_doc()["other_on"] == AWARE_TEXT
    assert Stamp().to_doc()["other_on"] is None


def test_every_bad_field_is_reported_in_field_order() -> None:
    with pytest.raises(ModelValidationError) as caught:
        Stamp(stamped_on=NAIVE, other_on=NAIVE)
    assert caught.value.fields == ("stamped_on", "other_on")


class Serialized(Model, type_name="serialized", version="1.0"):
    seconds: int = 0
    when: Annotated[int, PlainSerializer(lambda v: datetime.fromtimestamp(v, UTC))] = 0

    @field_serializer("seconds")
    def _seconds_as_datetime(self, value: int) -> datetime:
        return datetime.fromtimestamp(value, UTC)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def day_after(self) -> datetime:
        return datetime.fromtimestamp(self.seconds, UTC) + timedelta(days=1)


def test_datetimes_from_serializers_and_computed_fields_are_in_the_fixed_form() -> None:
    doc = Serialized(id="s", seconds=1, when=2).to_doc()
    assert doc["seconds"] == "1970-01-01T00:00:01.000000Z"
    assert doc["when"] == "1970-01-01T00:00:02.000000Z"
    assert doc["day_after"] == "1970-01-02T00:00:01.000000Z"


class WholeDump(Model, type_name="whole_dump", version="1.0"):
    at: datetime = AWARE

    @model_serializer
    def _dump(self) -> dict[str, Any]:
        return {"at": self.at, "also": [self.at]}


def test_a_model_serializer_is_walked_whole() -> None:
    assert WholeDump().to_doc()["also"] == [AWARE_TEXT]


class Computed(Model, type_name="computed", version="1.0"):
    on: datetime = AWARE

    @computed_field  # type: ignore[prop-decorator]
    @property
    def day_after(self) -> datetime:
        return self.on + timedelta(days=1)


def test_from_doc_skips_type_and_computed_fields() -> None:
    model = Computed(id="c")
    doc = model.to_doc()
    assert doc["day_after"] == "2026-11-28T10:36:01.000000Z"
    assert Computed.from_doc(doc) == model


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class _WithExtras(Model, type_name="with_extras", version="1.0"):
    loose: _Loose
    moments: frozenset[datetime] = frozenset()


def test_datetimes_in_extras_and_sets_are_stored_in_the_fixed_utc_form() -> None:
    plus_one = timezone(timedelta(hours=1))
    model = _WithExtras(
        loose=_Loose.model_validate({"when": datetime(2026, 1, 1, 12, tzinfo=plus_one)}),
        moments=frozenset(
            {datetime(2026, 1, 1, 12, tzinfo=plus_one), datetime(2026, 1, 2, tzinfo=UTC)}
        ),
    )
    doc = model.to_doc()
    assert doc["loose"] == {"when": "2026-01-01T11:00:00.000000Z"}
    assert doc["moments"] == ["2026-01-01T11:00:00.000000Z", "2026-01-02T00:00:00.000000Z"]


def test_a_naive_datetime_in_a_nested_models_extras_is_refused() -> None:
    with pytest.raises(ModelValidationError, match="when has no timezone"):
        _WithExtras(loose=_Loose.model_validate({"when": datetime(2026, 1, 1, 12)}))
