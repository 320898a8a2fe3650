"""Mergeable models: writing through them keeps the merge metadata right without help."""

from __future__ import annotations

from typing import Annotated, ClassVar

import pytest

import tor_async_couchdb as tac
from support.merge_models import FakeTime, Fruit
from tor_async_couchdb._merge import (
    GCounter,
    HybridClock,
    Max,
    Mergeable,
    Min,
    ORSet,
    PNCounter,
    UnsealedChangeError,
    seal,
)


def _saved(fruit: Fruit, clock: HybridClock) -> Fruit:
    seal(fruit, clock)
    return Fruit.from_doc({**fruit.to_doc(), "_rev": "1-a"})


def test_fields_read_as_plain_values_and_changes_are_sealed() -> None:
    clock = HybridClock("w1", now=FakeTime())
    fruit = _saved(Fruit(id="f1", color="red"), clock)
    assert fruit.color == "red"
    fruit.eaten.add(3)
    fruit.eaten.subtract(1)
    fruit.tags.add("ripe")
    assert (fruit.eaten.value, int(fruit.eaten), "ripe" in fruit.tags) == (2, 2, True)
    assert fruit.unsealed() == ("eaten", "tags")
    with pytest.raises(UnsealedChangeError) as caught:
        fruit.to_doc()
    assert caught.value.fields == ("eaten", "tags")
    seal(fruit, clock)
    doc = fruit.to_doc()
    assert doc["eaten"] == {"p": {"w1": 2}, "n": {}}  # the net change of the write
    assert doc["tags"] == {"dots": [["ripe", "w1", 1]], "ctx": {"w1": 1}}


def test_an_assignment_or_a_copy_with_update_stamps_the_register() -> None:
    time = FakeTime()
    clock = HybridClock("w1", now=time)
    fruit = _saved(Fruit(id="f1"), clock)
    before = fruit.stamps["color"]
    time.ms += 10
    fruit.color = "red"
    assert fruit.unsealed() == ("color",)
    stamp = seal(fruit, clock)
    assert stamp is not None
    assert stamp > before
    assert fruit.stamps["color"] == stamp
    assert fruit.stamps["origin.city"] == before  # unchanged registers keep their stamps
    copy = fruit.model_copy(update={"origin": fruit.origin.model_copy(update={"city": "Oslo"})})
    assert copy.unsealed() == ("origin.city",)
    assert fruit.unsealed() == ()
    later = seal(copy, clock)
    assert later is not None
    assert later > stamp
    assert seal(copy, clock) is None  # nothing changed since


def test_copies_do_not_share_metadata() -> None:
    clock = HybridClock("w1")
    fruit = _saved(Fruit(id="f1"), clock)
    copy = fruit.model_copy()
    copy.eaten.add(5)
    copy.tags.add("x")
    assert (fruit.eaten.value, "x" in fruit.tags) == (0, False)
    assert fruit.unsealed() == ()


def test_counters_and_sets_check_their_input() -> None:
    with pytest.raises(tac.InvalidInputError):
        GCounter().add(-1)
    with pytest.raises(tac.InvalidInputError):
        PNCounter().add(1.5)  # type: ignore[arg-type]
    tags: ORSet[str] = ORSet(kind=str)
    with pytest.raises(tac.InvalidInputError):
        tags.add(3)  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        tags.remove("absent")


def test_removing_a_pending_add_leaves_nothing_to_seal() -> None:
    fruit = _saved(Fruit(id="f1"), HybridClock("w1"))
    fruit.tags.add("x")
    fruit.tags.discard("x")
    assert fruit.unsealed() == ()
    assert fruit.tags.value == frozenset()


def test_counter_metadata_is_one_entry_per_writer() -> None:
    fruit = Fruit(id="f1")
    for n in range(50):
        fruit.eaten.add(1)
        seal(fruit, HybridClock(f"w{n % 3}"))
    assert fruit.eaten.value == 50
    assert fruit.eaten.writers == 3


def test_two_policies_on_one_field_are_a_definition_error() -> None:
    with pytest.raises(tac.ModelDefinitionError, match="one merge policy"):

        class Twice(Mergeable, type_name="twice", version="1.0"):
            size: Annotated[int, Max(), Min()] = 0


def test_a_delete_policy_is_one_of_two() -> None:
    with pytest.raises(tac.ModelDefinitionError, match="delete_policy"):

        class Odd(Mergeable, type_name="odd", version="1.0"):
            delete_policy: ClassVar = "newest_wins"  # type: ignore[assignment]


def test_set_elements_must_be_str_or_int() -> None:
    with pytest.raises(tac.ModelDefinitionError):

        class Floats(Mergeable, type_name="floats", version="1.0"):
            values: ORSet[float]  # type: ignore[type-var]


async def test_reconciler_settings_are_checked() -> None:
    from tor_async_couchdb._reconcile import Backoff, Reconciler

    with pytest.raises(tac.InvalidInputError):
        Backoff(initial=0)
    assert 0 <= Backoff(initial=1, maximum=4).delay(10) <= 4
    async with tac.CouchDB("http://127.0.0.1:1") as couch:  # (no request is made)
        with pytest.raises(tac.InvalidInputError):
            Reconciler(couch.database("x"), Fruit, concurrency=0)
        with pytest.raises(tac.InvalidInputError):
            Reconciler(couch.database("x"), Fruit, settle=-1)
