"""The store layer against a real server: persistence, queries, retries and migration of models."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

import tor_async_couchdb as tac
from support.eventually import views_caught_up

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"
    GREEN = "green"


class Origin(BaseModel):
    country: str
    picked_on: datetime | None = None


class Fruit(
    tac.Model,
    type_name="fruit",
    version="2.0",
    indexes={"fruit_id_updated_on": ("fruit_id", "updated_on")},
):
    fruit_id: Annotated[str, tac.Indexed()]
    color: Annotated[Color, tac.Indexed()]
    price: Annotated[Decimal, tac.Indexed()] = Decimal("1.00")
    updated_on: Annotated[datetime, tac.Indexed()] = T0
    origin: Origin | None = None
    tags: list[str] = Field(default_factory=list)
    counter: int = 0

    @tac.upgrade("1.0", to="2.0")
    @staticmethod
    def _colour_to_color(doc: dict[str, Any]) -> dict[str, Any]:
        doc["color"] = doc.pop("colour")
        return doc


class Basket(tac.Model, type_name="basket", version="1.0"):
    label: str


def fruit(fruit_id: str = "f1", minutes: int = 0, **fields: Any) -> Fruit:
    return Fruit(
        fruit_id=fruit_id,
        color=fields.pop("color", Color.RED),
        updated_on=T0 + timedelta(minutes=minutes),
        **fields,
    )


@pytest.fixture
async def store(db: tac.Database) -> tac.Database:
    """The test's database with the views of Fruit and Basket."""
    await db.install_views(Fruit, Basket)
    return db


async def collect(models: AsyncIterator[Fruit]) -> list[Fruit]:
    return [model async for model in models]


def keys(fruits: list[Fruit]) -> list[tuple[str, datetime]]:
    return [(f.fruit_id, f.updated_on) for f in fruits]


# --- save, get, delete -----------------------------------------------------------------------


async def test_every_field_type_round_trips(store: tac.Database) -> None:
    paris = timezone(timedelta(hours=1))
    original = Fruit(
        fruit_id="f1",
        color=Color.GREEN,
        price=Decimal("3.10"),
        updated_on=datetime(2026, 11, 27, 12, 30, 1, 5, tzinfo=paris),
        origin=Origin(country="fr", picked_on=datetime(2026, 11, 1, tzinfo=UTC)),
        tags=["sweet", "ripe"],
    )
    saved = await store.save(original)
    assert saved.id is not None
    assert saved.rev is not None
    assert original.id is None  # a copy is returned; the argument is not changed

    doc = await store.get_doc(saved.id)
    assert doc["type"] == "fruit_v2.0"
    assert doc["updated_on"] == "2026-11-27T11:30:01.000005Z"
    assert doc["price"] == "3.10"
    assert doc["color"] == "green"
    assert doc["origin"] == {"country": "fr", "picked_on": "2026-11-01T00:00:00.000000Z"}
    assert "tombstone" not in doc

    read = await store.get(Fruit, saved.id)
    assert read == saved
    assert read.updated_on == original.updated_on
    assert read.price == Decimal("3.10")
    assert read.origin is not None
    assert read.origin.country == "fr"


async def test_optional_fields_round_trip_as_null_and_defaults(store: tac.Database) -> None:
    saved = await store.save(fruit())
    read = await store.get(Fruit, saved.id or "")
    assert read.origin is None
    assert read.tags == []
    assert read.tombstone is False


async def test_save_assigns_time_ordered_ids_and_updates_with_the_rev(store: tac.Database) -> None:
    first = await store.save(fruit("a"))
    second = await store.save(fruit("b"))
    assert first.id is not None
    assert second.id is not None
    assert first.id < second.id
    changed = await store.save(first.model_copy(update={"counter": 5}))
    assert changed.id == first.id
    assert changed.rev != first.rev
    assert (await store.get(Fruit, first.id)).counter == 5
    with pytest.raises(tac.Conflict):
        await store.save(first.model_copy(update={"counter": 6}))  # first.rev is stale


async def test_save_with_own_id_and_no_rev_conflicts_if_it_exists(store: tac.Database) -> None:
    await store.save(fruit().model_copy(update={"id": "apple"}))
    with pytest.raises(tac.Conflict):
        await store.save(fruit().model_copy(update={"id": "apple"}))


async def test_invalid_model_is_rejected_before_any_write(store: tac.Database) -> None:
    # model_construct skips validation, as code that builds models by hand may.
    bad = Fruit.model_construct(fruit_id=7, color=Color.RED, tags=["ok"])
    before = (await store.info())["doc_count"]
    with pytest.raises(tac.ModelValidationError) as caught:
        await store.save(bad)
    assert "fruit_id" in caught.value.fields
    with pytest.raises(tac.ModelValidationError):
        await store.save_many([fruit("a"), fruit("b"), bad, fruit("c")], chunk_size=1)
    good = fruit()
    good.tags.append(3)  # type: ignore[arg-type]  # an in-place change skips validation too
    with pytest.raises(tac.ModelValidationError):
        await store.save(good)
    assert (await store.info())["doc_count"] == before  # only the design documents


async def test_get_rejects_missing_and_other_types(store: tac.Database) -> None:
    basket = await store.save(Basket(label="b"))
    with pytest.raises(tac.WrongTypeError) as caught:
        await store.get(Fruit, basket.id or "")
    assert caught.value.doc_id == basket.id
    assert caught.value.found == "basket_v1.0"
    await store.put_doc({"_id": "plain", "x": 1})
    with pytest.raises(tac.WrongTypeError):
        await store.get(Fruit, "plain")
    await store.put_doc({"_id": "future", "type": "fruit_v3.0", "fruit_id": "x"})
    with pytest.raises(tac.WrongTypeError, match="newer"):
        await store.get(Fruit, "future")
    with pytest.raises(tac.NotFound):
        await store.get(Fruit, "nothing-here")


async def test_older_versions_are_upgraded_on_read(store: tac.Database) -> None:
    await store.put_doc({"_id": "old", "type": "fruit_v1.0", "fruit_id": "f9", "colour": "blue"})
    read = await store.get(Fruit, "old")
    assert read.color is Color.BLUE
    assert read.rev is not None
    saved = await store.save(read)
    assert (await store.get_doc("old"))["type"] == "fruit_v2.0"
    assert saved.rev is not None
    assert saved.rev.startswith("2-")


async def test_get_many_in_order_raising_or_skipping_missing(store: tac.Database) -> None:
    saved = [await store.save(fruit(f"f{i}")) for i in range(3)]
    ids = [s.id or "" for s in reversed(saved)]
    assert [f.fruit_id async for f in store.get_many(Fruit, ids)] == ["f2", "f1", "f0"]
    await store.delete(saved[1])
    with_gaps = [ids[0], "never", ids[1], ids[2]]
    with pytest.raises(tac.NotFound) as caught:
        [f async for f in store.get_many(Fruit, with_gaps)]
    assert caught.value.doc_id == "never"
    skipped = [f.fruit_id async for f in store.get_many(Fruit, with_gaps, missing="skip")]
    assert skipped == ["f2", "f0"]
    paged = store.get_many(Fruit, with_gaps, missing="skip", page_size=1)
    assert [f.fruit_id async for f in paged] == ["f2", "f0"]


async def test_delete_needs_the_latest_rev_unless_retried(store: tac.Database) -> None:
    stale = await store.save(fruit())
    await store.save(stale.model_copy(update={"counter": 1}))
    with pytest.raises(tac.Conflict):
        await store.delete(stale)
    await store.delete(stale, retry=tac.ConflictRetry.immediate(3))
    with pytest.raises(tac.NotFound):
        await store.get(Fruit, stale.id or "")
    with pytest.raises(tac.InvalidInputError):
        await store.delete(fruit())


async def test_tombstoned_models_are_kept_but_left_out_of_queries(store: tac.Database) -> None:
    live = await store.save(fruit("a", color=Color.BLUE))
    gone = await store.tombstone(await store.save(fruit("b", color=Color.BLUE)))
    assert gone.tombstone
    await views_caught_up(store, Fruit, [live, gone])
    assert (await store.get(Fruit, gone.id or "")).tombstone
    assert [f.id for f in await collect(store.query(Fruit, color=Color.BLUE))] == [live.id]
    everything = store.query(Fruit, color=Color.BLUE, include_tombstoned=True)
    assert [f.id for f in await collect(everything)] == [live.id, gone.id]
    assert [f.id for f in await collect(store.all(Fruit))] == [live.id]
    found = store.find_models(Fruit, {"color": "blue"})
    assert [f.id async for f in found] == [live.id]
    again = await store.tombstone(live, retry=tac.ConflictRetry.immediate(2))
    assert again.tombstone
    await views_caught_up(store, Fruit, [again, gone])
    assert await collect(store.all(Fruit)) == []


# --- bulk ------------------------------------------------------------------------------------


async def test_save_many_returns_a_result_per_model(store: tac.Database) -> None:
    existing = await store.save(fruit("x"))
    await store.save(existing.model_copy(update={"counter": 1}))
    models = [fruit(f"f{i}") for i in range(7)] + [existing.model_copy(update={"counter": 2})]
    results = await store.save_many(models, chunk_size=3)
    assert [r.ok for r in results] == [True] * 7 + [False]
    assert isinstance(results[-1].error, tac.Conflict)
    assert results[-1].model.id == existing.id
    with pytest.raises(tac.Conflict):
        results[-1].unwrap()
    saved = [r.unwrap() for r in results[:7]]
    assert all(s.rev is not None and s.rev.startswith("1-") for s in saved)
    assert [s.fruit_id for s in saved] == [f"f{i}" for i in range(7)]
    assert (await store.get(Fruit, saved[3].id or "")) == saved[3]
    assert await store.save_many([]) == []


async def test_save_many_rejects_repeated_ids_before_writing(store: tac.Database) -> None:
    twin = fruit().model_copy(update={"id": "twin"})
    with pytest.raises(tac.InvalidInputError):
        await store.save_many([twin, twin])
    with pytest.raises(tac.NotFound):
        await store.get(Fruit, "twin")


# --- queries ---------------------------------------------------------------------------------


@pytest.fixture
async def orchard(store: tac.Database) -> list[Fruit]:
    """Three fruits with four states each, a minute apart; states of f2 are blue."""
    models = [
        fruit(
            f"f{n}",
            minutes=10 * n + m,
            color=Color.BLUE if n == 2 else Color.RED,
            price=Decimal(f"{n}.{m}0"),
        )
        for n in range(1, 4)
        for m in range(4)
    ]
    saved = [result.unwrap() for result in await store.save_many(models)]
    await views_caught_up(store, Fruit, saved)
    return saved


async def test_query_exact_values(store: tac.Database, orchard: list[Fruit]) -> None:
    blue = await collect(store.query(Fruit, color=Color.BLUE))
    assert [f.id for f in blue] == [f.id for f in orchard[4:8]]
    assert await collect(store.query(Fruit, color="blue", limit=2)) == orchard[4:6]
    assert await collect(store.query(Fruit, price=Decimal("3.20"))) == [orchard[10]]
    assert await collect(store.query(Fruit, fruit_id="f3", page_size=1)) == orchard[8:]
    # datetimes in any timezone are the same instant, stored in UTC:
    later = orchard[5].updated_on.astimezone(timezone(timedelta(hours=-5)))
    assert await collect(store.query(Fruit, updated_on=later)) == [orchard[5]]
    # compound key through the compound index, in any argument order:
    by_both = store.query(Fruit, updated_on=orchard[6].updated_on, fruit_id="f2")
    assert await collect(by_both) == [orchard[6]]
    assert await collect(store.query(Fruit, color=Color.GREEN)) == []


async def test_query_rejects_bad_input_before_any_request(store: tac.Database) -> None:
    with pytest.raises(tac.InvalidInputError, match="no index"):
        store.query(Fruit, counter=1)
    with pytest.raises(tac.InvalidInputError):
        store.query(Fruit, color="purple")
    with pytest.raises(tac.InvalidInputError, match="timezone"):
        store.query(Fruit, updated_on=datetime(2026, 1, 1))
    with pytest.raises(tac.InvalidInputError):
        store.query_range(Fruit, "nope")


async def test_query_range_bounds_and_order(store: tac.Database, orchard: list[Fruit]) -> None:
    start, end = orchard[2].updated_on, orchard[6].updated_on
    inclusive = store.query_range(Fruit, "updated_on", start=start, end=end)
    assert await collect(inclusive) == orchard[2:7]
    exclusive = store.query_range(
        Fruit, "updated_on", start=start, end=end, inclusive_start=False, inclusive_end=False
    )
    assert await collect(exclusive) == orchard[3:6]
    down = store.query_range(Fruit, "updated_on", start=end, end=start, descending=True)
    assert await collect(down) == orchard[6:1:-1]
    down_excl = store.query_range(
        Fruit, "updated_on", start=end, descending=True, inclusive_start=False, limit=2
    )
    assert await collect(down_excl) == [orchard[5], orchard[4]]
    open_end = store.query_range(Fruit, "updated_on", start=orchard[9].updated_on, page_size=1)
    assert await collect(open_end) == orchard[9:]
    assert await collect(store.query_range(Fruit, "updated_on", limit=3)) == orchard[:3]


async def test_query_range_on_a_compound_index(store: tac.Database, orchard: list[Fruit]) -> None:
    whole = store.query_range(Fruit, "fruit_id_updated_on", prefix=("f2",))
    assert await collect(whole) == orchard[4:8]
    newest_first = store.query_range(Fruit, "fruit_id_updated_on", prefix=("f2",), descending=True)
    assert await collect(newest_first) == orchard[7:3:-1]
    part = store.query_range(
        Fruit,
        "fruit_id_updated_on",
        prefix=("f3",),
        start=orchard[9].updated_on,
        inclusive_start=False,
    )
    assert await collect(part) == orchard[10:]
    # Partial keys: a bound of fewer values than the index takes in (or leaves out) every
    # row under it, as the inclusive and exclusive flags say.
    index = "fruit_id_updated_on"
    tuples = store.query_range(Fruit, index, start=("f2",), end=("f3",))
    assert await collect(tuples) == orchard[4:12]
    open_below = store.query_range(Fruit, index, start=("f1",), end=("f3",), inclusive_end=False)
    assert await collect(open_below) == orchard[0:8]
    open_above = store.query_range(Fruit, index, start=("f1",), inclusive_start=False)
    assert await collect(open_above) == orchard[4:12]
    down = store.query_range(Fruit, index, start=("f3",), end=("f2",), descending=True)
    assert await collect(down) == orchard[11:3:-1]
    down_open = store.query_range(
        Fruit,
        index,
        start=("f3",),
        end=("f1",),
        descending=True,
        inclusive_start=False,
        inclusive_end=False,
    )
    assert await collect(down_open) == orchard[7:3:-1]


async def test_most_recent(store: tac.Database, orchard: list[Fruit]) -> None:
    index = "fruit_id_updated_on"
    assert await store.most_recent(Fruit, index, prefix=("f1",)) == [orchard[3]]
    assert await store.most_recent(Fruit, index, prefix=("f2",), limit=2) == orchard[7:5:-1]
    assert await store.most_recent(Fruit, index) == [orchard[11]]
    assert await store.most_recent(Fruit, "updated_on", limit=2) == [orchard[11], orchard[10]]
    assert await store.most_recent(Fruit, index, prefix=("nope",)) == []
    # A tombstone as the newest state hides the thing; it does not bring back older states.
    await store.tombstone(orchard[3])
    assert await store.most_recent(Fruit, index, prefix=("f1",)) == []
    with_tomb = await store.most_recent(Fruit, index, prefix=("f1",), include_tombstoned=True)
    assert [f.id for f in with_tomb] == [orchard[3].id]
    assert with_tomb[0].tombstone


async def test_all_reads_every_model_of_the_type(store: tac.Database, orchard: list[Fruit]) -> None:
    await store.save(Basket(label="not a fruit"))
    await store.put_doc({"_id": "old", "type": "fruit_v1.0", "fruit_id": "f0", "colour": "red"})
    everything = await collect(store.all(Fruit, page_size=5))
    assert [f.id for f in everything] == [*(f.id for f in orchard), "old"]
    assert everything[-1].color is Color.RED  # upgraded on read
    backwards = await collect(store.all(Fruit, descending=True, limit=2))
    assert [f.id for f in backwards] == ["old", orchard[-1].id]


async def test_find_models_adds_the_type(store: tac.Database, orchard: list[Fruit]) -> None:
    await store.put_doc({"_id": "old", "type": "fruit_v1.0", "fruit_id": "f2", "colour": "red"})
    await store.put_doc({"_id": "other", "type": "basket_v1.0", "fruit_id": "f2", "label": "b"})
    found = [f async for f in store.find_models(Fruit, {"fruit_id": "f2"})]
    assert sorted(f.id or "" for f in found) == sorted([*(f.id or "" for f in orchard[4:8]), "old"])
    since = tac.stored_value(Fruit, "updated_on", orchard[9].updated_on)
    later = store.find_models(Fruit, {"updated_on": {"$gt": since}}, page_size=1)
    assert sorted([f.id or "" async for f in later]) == [f.id for f in orchard[10:]]


# --- install_views ---------------------------------------------------------------------------


async def test_install_views_is_idempotent_and_updates_changed_views(db: tac.Database) -> None:
    written = await db.install_views(Fruit, Basket)
    assert set(written) == {d["_id"] for d in tac.design_docs([Fruit, Basket])}
    assert await db.install_views(Fruit, Basket) == []
    design, view = tac.view_location(Fruit, "color")
    old = await db.get_doc(design)
    await db.put_doc({**old, "views": {view: {"map": "function (doc) {}"}}})
    assert await db.install_views(Fruit) == [design]
    assert (await db.get_doc(design))["views"] == tac.design_doc(Fruit, "color")["views"]


# --- update with retry -----------------------------------------------------------------------


async def test_concurrent_updates_all_count(store: tac.Database) -> None:
    counter = await store.save(fruit())
    retry = tac.ConflictRetry(attempts=200, backoff=0.005, max_backoff=0.1)

    def increment(f: Fruit) -> Fruit:
        return f.model_copy(update={"counter": f.counter + 1})

    await asyncio.gather(
        *(store.update(Fruit, counter.id or "", increment, retry=retry) for _ in range(50))
    )
    final = await store.get(Fruit, counter.id or "")
    assert final.counter == 50
    assert final.rev is not None
    # Updates of one document through one client are combined: far fewer than 50 writes.
    assert int(final.rev.split("-")[0]) < 51


async def test_update_takes_async_changes(store: tac.Database) -> None:
    saved = await store.save(fruit())

    async def recolor(f: Fruit) -> Fruit:
        await asyncio.sleep(0)
        return f.model_copy(update={"color": Color.GREEN})

    updated = await store.update(Fruit, saved.id or "", recolor)
    assert updated.color is Color.GREEN
    assert updated.rev != saved.rev
    assert await store.get(Fruit, saved.id or "") == updated


async def test_update_gives_up_with_conflict_when_retries_are_used_up(
    store: tac.Database,
) -> None:
    saved = await store.save(fruit())
    calls = 0

    async def always_overtaken(f: Fruit) -> Fruit:
        # Someone else writes between our read and our write, every time.
        nonlocal calls
        calls += 1
        await store.save(await store.get(Fruit, f.id or ""))
        return f.model_copy(update={"counter": 99})

    with pytest.raises(tac.Conflict):
        await store.update(
            Fruit, saved.id or "", always_overtaken, retry=tac.ConflictRetry.immediate(3)
        )
    assert calls == 3
    assert (await store.get(Fruit, saved.id or "")).counter == 0
    with pytest.raises(tac.InvalidInputError):
        await store.update(Fruit, saved.id or "", lambda f: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(tac.NotFound):
        await store.update(Fruit, "missing", lambda f: f)


async def test_update_honours_the_deadline(store: tac.Database) -> None:
    saved = await store.save(fruit())
    calls = 0

    async def overtaken(f: Fruit) -> Fruit:
        nonlocal calls
        calls += 1
        await store.save(await store.get(Fruit, f.id or ""))
        return f

    retry = tac.ConflictRetry(
        attempts=1000, backoff=0.05, max_backoff=0.05, jitter=False, deadline=0.3
    )
    with pytest.raises(tac.Conflict):
        await store.update(Fruit, saved.id or "", overtaken, retry=retry)
    assert 2 <= calls <= 7  # 0.3 s of 0.05 s waits, not 1000 attempts


async def test_query_range_whose_exclusive_partial_start_passes_its_end_is_empty(
    store: tac.Database, orchard: list[Fruit]
) -> None:
    index = "fruit_id_updated_on"
    empty = store.query_range(Fruit, index, start=("f2",), end=("f2",), inclusive_start=False)
    assert await collect(empty) == []
    within = (orchard[5].fruit_id, orchard[5].updated_on)
    inside = store.query_range(Fruit, index, start=("f2",), end=within, inclusive_start=False)
    assert await collect(inside) == []
