"""The store with and without the save lane: the same models, the same JSON stored.

For simple models, what ``db.save`` writes and returns is built by a plain-Python lane
(``Model.__couch_fast__``) instead of pydantic. Here a model with a field of every kind the lane
covers goes through save (create, update), update, get, get_many and a view query against a real
server, once with the lane and once without it (pydantic alone, the oracle): every model of the
two runs is alike value by value and type by type (tzinfo classes and fields set included), and
the documents stored are the same JSON, byte for byte.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from pydantic import BaseModel, Field

import tor_async_couchdb as tac
from support.eventually import views_caught_up

KOLKATA = timezone(timedelta(hours=5, minutes=30))
PARIS = ZoneInfo("Europe/Paris")


class Hue(enum.Enum):
    RED = "red"
    GREEN = "grün"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 9


class Crate(tac.Model, type_name="fastlane_crate", version="1.0"):
    """A field of every kind the lane covers."""

    label: Annotated[str, tac.Indexed()]
    count: int
    ratio: float
    fresh: bool
    price: Decimal
    packed_on: datetime
    hue: Hue
    size: Size
    note: str | None = None
    weight: float | None = None
    sold_on: datetime | None = None
    known_size: Size | None = None
    tags: list[str] = Field(default_factory=list)
    prices: list[Decimal] = Field(default_factory=list)
    checks: list[datetime | None] = Field(default_factory=list)
    hues: list[Hue] = Field(default_factory=list)
    stock: dict[str, int] = Field(default_factory=dict)
    seen: dict[str, datetime] = Field(default_factory=dict)
    price_by_shop: dict[str, Decimal | None] = Field(default_factory=dict)


def crate() -> Crate:
    return Crate(
        label="naïve ☃ crate",
        count=-(2**53),
        ratio=-0.0,
        fresh=True,
        price=Decimal("1E+2"),
        packed_on=datetime(2026, 11, 27, 12, 30, 1, 5, tzinfo=KOLKATA),
        hue=Hue.GREEN,
        size=Size.LARGE,
        weight=0.1,
        sold_on=datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=PARIS),
        tags=["b", "", "a"],
        prices=[Decimal("-0"), Decimal("19.90"), Decimal("0.1000000000000000055511151231257827")],
        checks=[None, datetime(2026, 1, 1, tzinfo=UTC)],
        hues=[Hue.RED, Hue.GREEN],
        stock={"z": 1, "a": 2},
        seen={"paris": datetime(2026, 3, 29, 3, 0, 0, 999999, tzinfo=PARIS)},
        price_by_shop={"corner": None, "market": Decimal("3.10")},
    )


CHANGES: dict[str, Any] = {
    "note": "checked",
    "known_size": Size.SMALL,
    "tags": [],
    "stock": {},
    "packed_on": datetime(2026, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-11))),
}


def shape(value: object) -> object:
    """``value`` with the exact type of everything in it (``repr`` tells -0.0 from 0.0 and
    Decimal("1.0") from Decimal("1.00"), and names a datetime's tzinfo)."""
    if isinstance(value, BaseModel):
        return model_shape(value)
    if isinstance(value, list):
        return (list, [shape(item) for item in value])
    if isinstance(value, dict):
        return (dict, [(key, shape(item)) for key, item in value.items()])
    if isinstance(value, datetime):
        return (type(value), repr(value), type(value.tzinfo))
    return (type(value), repr(value))


def model_shape(model: BaseModel) -> object:
    """The shape of a model, but for its id (another in each run) and the hash of its rev."""
    values = dict(model.__dict__)
    assert isinstance(values["id"], str)
    assert isinstance(values["rev"], str)
    values["id"] = "<id>"
    values["rev"] = values["rev"].split("-")[0]
    return (
        type(model),
        [(name, shape(item)) for name, item in values.items()],
        sorted(model.model_fields_set),
        model.__pydantic_extra__,
        model.__pydantic_private__,
    )


def stored_json(doc: dict[str, Any]) -> bytes:
    """A stored document as JSON, without its id and rev."""
    # (Not the write stamp either: on a cluster every write has a new one.)
    skipped = ("_id", "_rev", "~write")
    return orjson.dumps({key: value for key, value in doc.items() if key not in skipped})


def recount(current: Crate) -> Crate:
    return current.model_copy(update={"count": current.count + 1})


async def collect(models: AsyncIterator[Crate]) -> list[Crate]:
    return [model async for model in models]


async def trace(db: tac.Database) -> dict[str, object]:
    """What the store returns and stores for one crate, from its creation to its deletion."""
    created = await db.save(crate())
    doc_id = created.id
    assert doc_id is not None
    created_doc = await db.get_doc(doc_id)
    saved = await db.save(created.model_copy(update=CHANGES))
    saved_doc = await db.get_doc(doc_id)
    updated = await db.update(Crate, doc_id, recount)
    updated_doc = await db.get_doc(doc_id)
    read = await db.get(Crate, doc_id)
    await views_caught_up(db, Crate, [read])  # (at once on one node; a cluster's copies may lag)
    many = await collect(db.get_many(Crate, [doc_id, doc_id]))
    queried = await collect(db.query(Crate, label=read.label))
    assert [model.id for model in queried] == [doc_id]
    await db.delete(read)  # so that the next run's query finds its own crate only
    return {
        "created": shape(created),
        "created_doc": stored_json(created_doc),
        "saved": shape(saved),
        "saved_doc": stored_json(saved_doc),
        "updated": shape(updated),
        "updated_doc": stored_json(updated_doc),
        "read": shape(read),
        "many": shape(many),
        "queried": shape(queried),
    }


@pytest.fixture
async def both_lanes(
    db: tac.Database, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, object], dict[str, object]]:
    """The trace of a crate with the save lane, then without it (pydantic alone)."""
    await db.install_views(Crate)
    assert Crate.__couch_fast__ is not None  # else both runs would take the pydantic path
    with_lane = await trace(db)
    monkeypatch.setattr(Crate, "__couch_fast__", None)
    return with_lane, await trace(db)


def test_the_lane_takes_the_crate() -> None:
    # Else the comparisons below would compare pydantic with itself.
    plan = Crate.__couch_fast__
    assert plan is not None
    assert plan.checked(crate().__dict__, {}) is not None
    changed = crate().model_copy(update=CHANGES)
    assert plan.checked(changed.__dict__, {"id": "c", "rev": "1-a"}) is not None


async def test_saved_models_are_alike_in_both_lanes(
    both_lanes: tuple[dict[str, object], dict[str, object]],
) -> None:
    with_lane, without_lane = both_lanes
    for step in ("created", "saved", "updated"):
        assert with_lane[step] == without_lane[step], step


async def test_stored_documents_are_the_same_json_in_both_lanes(
    both_lanes: tuple[dict[str, object], dict[str, object]],
) -> None:
    with_lane, without_lane = both_lanes
    for step in ("created_doc", "saved_doc", "updated_doc"):
        assert with_lane[step] == without_lane[step], step


async def test_models_read_back_are_alike_in_both_lanes(
    both_lanes: tuple[dict[str, object], dict[str, object]],
) -> None:
    with_lane, without_lane = both_lanes
    for step in ("read", "many", "queried"):
        assert with_lane[step] == without_lane[step], step
