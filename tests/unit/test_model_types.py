"""Field types: each survives to_doc -> JSON -> from_doc; datetimes are aware, UTC and sortable."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
import pydantic
import pytest

from tor_async_couchdb._exceptions import ModelValidationError, NotJSONError
from tor_async_couchdb._models._model import Model

AWARE = datetime(2026, 11, 27, 11, 36, 1, 123456, tzinfo=UTC)
AWARE_TEXT = "2026-11-27T11:36:01.123456Z"
EXACT = "0.1000000000000000055511151231257827"
UID = "0192f0c1-a2b3-7000-8e0c-9d3f7a1b2c4d"
PARIS = timezone(timedelta(hours=1))


class Color(enum.StrEnum):
    RED = "red"
    GREEN = "green"


class Size(enum.Enum):
    SMALL = 1
    LARGE = 2


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 9


class Address(pydantic.BaseModel):
    street: str
    moved_in: datetime | None = None


class Everything(Model, type_name="everything", version="1.0"):
    text: str = ""
    count: int = 0
    ratio: float = 0.0
    flag: bool = False
    price: Decimal = Decimal(0)
    at: datetime = AWARE
    day: date = date(2026, 1, 1)
    color: Color = Color.RED
    size: Size = Size.SMALL
    level: Level = Level.LOW
    address: Address | None = None
    addresses: list[Address] = pydantic.Field(default_factory=list)
    tags: list[str] = pydantic.Field(default_factory=list)
    scores: dict[str, int] = pydantic.Field(default_factory=dict)
    times: dict[str, datetime] = pydantic.Field(default_factory=dict)
    maybe: int | None = None
    uid: UUID | None = None
    anything: Any = None


def through_json(model: Everything) -> Everything:
    return Everything.from_doc(orjson.loads(orjson.dumps(model.to_doc())))


@pytest.mark.parametrize(
    ("field", "value", "stored"),
    [
        ("text", "naïve ☃ \u2028", "naïve ☃ \u2028"),
        ("count", -(2**53), -(2**53)),
        ("ratio", 0.1, 0.1),
        ("flag", True, True),
        ("price", Decimal(EXACT), EXACT),
        ("price", Decimal("19.90"), "19.90"),
        ("at", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05.000000Z"),
        ("at", datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=PARIS), "2026-01-02T02:04:05.000600Z"),
        ("day", date(2026, 2, 28), "2026-02-28"),
        ("color", Color.GREEN, "green"),
        ("size", Size.LARGE, 2),
        ("level", Level.HIGH, 9),
        (
            "address",
            Address(street="Main", moved_in=AWARE),
            {"street": "Main", "moved_in": AWARE_TEXT},
        ),
        (
            "addresses",
            [Address(street="A"), Address(street="B", moved_in=AWARE)],
            [{"street": "A", "moved_in": None}, {"street": "B", "moved_in": AWARE_TEXT}],
        ),
        ("tags", ["a", "b"], ["a", "b"]),
        ("scores", {"x": 1, "y": 2}, {"x": 1, "y": 2}),
        ("times", {"t": datetime(2026, 1, 1, tzinfo=PARIS)}, {"t": "2025-12-31T23:00:00.000000Z"}),
        ("maybe", None, None),
        ("maybe", 3, 3),
        ("uid", UUID(UID), UID),
    ],
)
def test_round_trip(field: str, value: Any, stored: object) -> None:
    model = Everything(**{field: value})
    assert model.to_doc()[field] == stored
    back = through_json(model)
    assert back == model
    assert getattr(back, field) == value


def test_datetimes_in_untyped_fields_are_stored_in_the_fixed_format() -> None:
    # An Any field has no type to read a datetime back with: it comes back as the string.
    model = Everything(anything=[AWARE, {"k": AWARE}])
    stored = "2026-11-27T11:36:01.123456Z"
    assert model.to_doc()["anything"] == [stored, {"k": stored}]
    assert through_json(model).anything == [stored, {"k": stored}]


def test_decimal_keeps_its_exact_digits() -> None:
    back = through_json(Everything(price=Decimal("19.90")))
    assert str(back.price) == "19.90"


def test_datetimes_read_back_in_utc() -> None:
    back = through_json(Everything(at=datetime(2026, 1, 1, 12, tzinfo=PARIS)))
    assert back.at.utcoffset() == timedelta(0)
    assert back.at == datetime(2026, 1, 1, 11, tzinfo=UTC)


def test_stored_datetimes_sort_like_the_instants() -> None:
    instants = [
        datetime(2026, 1, 1, 0, 0, 0, 0, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 30, tzinfo=PARIS),
        datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC),
        datetime(999, 1, 1, tzinfo=UTC),
    ]
    stored = [Everything(at=at).to_doc()["at"] for at in instants]
    assert len({len(text) for text in stored}) == 1
    assert sorted(stored) == [Everything(at=at).to_doc()["at"] for at in sorted(instants)]
    assert stored[-1] == "0999-01-01T00:00:00.000000Z"


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"at": datetime(2026, 1, 1)}, "at: datetime has no timezone"),
        ({"at": "2026-01-01T00:00:00"}, "at: datetime has no timezone"),
        ({"times": {"t": datetime(2026, 1, 1)}}, "times: datetime at t has no timezone"),
        ({"address": {"street": "x", "moved_in": datetime(2026, 1, 1)}}, "at moved_in has"),
        (
            {"addresses": [{"street": "x"}, {"street": "y", "moved_in": "2026-01-01T00:00"}]},
            "at 1.moved_in",
        ),
        ({"anything": [1, datetime(2026, 1, 1)]}, "anything: datetime at 1 has no timezone"),
    ],
)
def test_naive_datetimes_are_refused_anywhere(values: dict[str, Any], where: str) -> None:
    with pytest.raises(ModelValidationError, match=where):
        Everything(**values)


def test_a_naive_datetime_in_a_stored_doc_is_refused() -> None:
    doc = {"_id": "abc", **Everything().to_doc(), "at": "2026-01-01T00:00:00"}
    with pytest.raises(ModelValidationError, match="no timezone") as caught:
        Everything.from_doc(doc)
    assert caught.value.fields == ("at",)


def test_assigning_a_naive_datetime_is_refused() -> None:
    model = Everything()
    with pytest.raises(ModelValidationError, match="no timezone"):
        model.at = datetime(2026, 1, 1)


@pytest.mark.parametrize("ratio", [float("nan"), float("inf"), float("-inf")])
def test_floats_json_cannot_hold_are_refused(ratio: float) -> None:
    with pytest.raises(ModelValidationError, match="ratio"):
        Everything(ratio=ratio)


def test_a_value_without_json_form_is_a_not_json_error() -> None:
    with pytest.raises(NotJSONError, match="Everything"):
        Everything(anything=object()).to_doc()
