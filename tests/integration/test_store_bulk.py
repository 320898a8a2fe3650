"""save_many in bulk (issue 10): one bad model among a thousand writes nothing, whichever path
checks it (the batch of the save lane, one model at a time, pydantic), and what a batch saves
reads back as it was sent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import pytest
from pydantic import Field

import tor_async_couchdb as tac

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class Entry(tac.Model, type_name="bulk_entry", version="1.0"):
    """Save-lane fields only: saved as a batch."""

    seq: Annotated[int, tac.Indexed()]
    name: str
    price: Decimal
    at: datetime
    tags: list[str]
    note: str | None = None


class Checked(tac.Model, type_name="bulk_checked", version="1.0"):
    """A constraint: no save lane, saved through pydantic."""

    seq: int = Field(ge=0)
    at: datetime


def entry(i: int) -> Entry:
    return Entry(
        seq=i,
        name=f"entry {i}",
        price=Decimal(f"{i}.50"),
        at=T0 + timedelta(seconds=i),
        tags=["a", f"t{i % 7}"],
        note=None if i % 2 else "even",
    )


def naive_at(model: Any) -> None:
    model.__dict__["at"] = datetime(2026, 1, 1)  # the point: a naive one


def bad_tag(model: Any) -> None:
    model.tags.append(3)  # an in-place change pydantic never saw


def nan_price(model: Any) -> None:
    model.__dict__["price"] = Decimal("NaN")


def bad_id(model: Any) -> None:
    model.__dict__["id"] = "_reserved"


async def doc_count(db: tac.Database) -> int:
    return int((await db.info())["doc_count"])


@pytest.mark.parametrize("spoil", [naive_at, bad_tag, nan_price, bad_id])
@pytest.mark.parametrize("where", [0, 617, 999])
async def test_one_bad_model_among_a_thousand_writes_nothing(
    db: tac.Database, spoil: Callable[[Any], None], where: int
) -> None:
    models = [entry(i) for i in range(1000)]
    spoil(models[where])
    with pytest.raises(tac.ModelValidationError):
        await db.save_many(models, chunk_size=100)
    assert await doc_count(db) == 0


async def test_one_bad_model_written_through_pydantic_writes_nothing(db: tac.Database) -> None:
    assert Checked.__couch_fast__ is None
    models = [Checked(seq=i, at=T0) for i in range(1000)]
    models[700].__dict__["seq"] = -1
    with pytest.raises(tac.ModelValidationError):
        await db.save_many(models, chunk_size=100)
    assert await doc_count(db) == 0


async def test_a_batch_reads_back_as_it_was_sent(db: tac.Database) -> None:
    await db.install_views(Entry)
    models = [entry(i) for i in range(1000)]
    results = await db.save_many(models)
    saved = [result.unwrap() for result in results]
    assert [model.seq for model in saved] == list(range(1000))
    assert all(model.id is not None and model.rev is not None for model in saved)
    assert len({model.id for model in saved}) == 1000
    read = [model async for model in db.get_many(Entry, [model.id or "" for model in saved])]
    assert read == saved
    assert [m.model_dump(exclude={"id", "rev"}) for m in read] == [
        m.model_dump(exclude={"id", "rev"}) for m in models
    ]
    # And again as updates, with their revs: a batch too.
    changed = [model.model_copy(update={"name": "again"}) for model in saved]
    again = [result.unwrap() for result in await db.save_many(changed)]
    assert all((model.rev or "").startswith("2-") for model in again)
    assert [model async for model in db.query_range(Entry, "seq", start=0, end=9)] == again[:10]


async def test_models_of_two_classes_in_one_save_many(db: tac.Database) -> None:
    results = await db.save_many([entry(1), Checked(seq=1, at=T0), entry(2)])
    assert [type(result.unwrap()) for result in results] == [Entry, Checked, Entry]
    assert await doc_count(db) == 3
