"""The hybrid logical clock, and clock skew: a causally later write wins a register even when
the earlier writer's clock ran 10 minutes ahead (a bare wall-clock register loses it)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import Field

import tor_async_couchdb as tac
from support.merge_models import FakeTime, Fruit, base_doc, rev_of
from tor_async_couchdb._merge import (
    HybridClock,
    Mergeable,
    ORSet,
    Stamp,
    parse_stamp,
    resolve_leaves,
    seal,
)

_TEN_MINUTES = 600_000


def test_stamps_only_grow_and_round_trip() -> None:
    time = FakeTime()
    clock = HybridClock("dc1-w1", now=time)
    first, second = clock.tick(), clock.tick()
    assert first < second
    assert first.wall == second.wall == time.ms
    time.ms -= 5_000  # the wall clock stepped back: the stamps still grow
    assert clock.tick() > second
    assert parse_stamp(str(second)) == second
    assert str(Stamp(1, 2, "n")) == "0000000000001.0002@n"


@pytest.mark.parametrize("bad", ["", "has space", "x" * 65, "a@b"])
def test_node_ids_are_checked(bad: str) -> None:
    with pytest.raises(tac.InvalidInputError):
        HybridClock(bad)


@pytest.mark.parametrize("text", ["", "12.3@n", "0000000000001.0002@", None, 5])
def test_bad_stamps_are_refused(text: object) -> None:
    with pytest.raises(tac.InvalidInputError):
        parse_stamp(text)


def test_a_remote_stamp_within_the_cap_is_adopted() -> None:
    clock = HybridClock("b", now=FakeTime(), max_ahead=timedelta(minutes=1))
    remote = Stamp(FakeTime().ms + 30_000, 7, "a")
    assert clock.after([remote]) == Stamp(remote.wall, 8, "b")
    assert clock.tick() > remote  # adopted: later local stamps stay ahead of it
    assert clock.skew_events == 0


def test_a_remote_stamp_beyond_the_cap_is_followed_but_not_adopted() -> None:
    time = FakeTime()
    clock = HybridClock("b", now=time, max_ahead=timedelta(minutes=1))
    remote = Stamp(time.ms + _TEN_MINUTES, 0, "a")
    assert clock.after([remote]) > remote  # this write still follows it
    assert clock.skew_events == 1
    assert clock.tick().wall == time.ms  # but the clock itself was not dragged ahead


class WallClockFruit(Mergeable, type_name="wall_fruit", version="1.0"):
    """The negative control: a register ordered by bare wall-clock time."""

    color: str = "green"
    written_at: datetime = datetime(2000, 1, 1, tzinfo=UTC)
    tags: ORSet[str] = Field(default_factory=ORSet)

    @classmethod
    def merge(cls, leaves: Sequence[WallClockFruit]) -> WallClockFruit:
        latest = max(leaves, key=lambda leaf: leaf.written_at)
        tags = leaves[0].tags
        for leaf in leaves[1:]:
            tags = tags.join(leaf.tags)
        return latest.model_copy(update={"tags": tags})


def _leaf(model: Any, number: int) -> dict[str, Any]:
    body = tac.Model.to_doc(model)
    return {**body, "_rev": rev_of(number, body)}


def test_a_causally_later_write_wins_despite_a_clock_ten_minutes_ahead() -> None:
    real = FakeTime()
    fast = HybridClock("dc1-fast", now=FakeTime(real.ms + _TEN_MINUTES))
    slow_b = HybridClock("dc2-b", now=real)
    other_c = HybridClock("dc1-c", now=real)
    # dc1's fast writer sets the color; dc2 reads that and sets it again, later in real time.
    fruit = Fruit.from_doc(base_doc())
    fruit.color = "fast"
    seal(fruit, fast)
    after_fast = _leaf(fruit, 2)
    real.ms += 1_000
    b = Fruit.from_doc(after_fast)
    b.color = "later"
    seal(b, slow_b)
    # Meanwhile, in dc1, another writer changes something else on top of the fast write.
    c = Fruit.from_doc(after_fast)
    c.tags.add("ripe")
    seal(c, other_c)
    merged = resolve_leaves(Fruit, [_leaf(b, 3), _leaf(c, 3)]).body
    assert merged is not None
    assert Fruit.from_doc(merged).color == "later"
    assert Fruit.from_doc(merged).tags.value == {"ripe"}


def test_a_bare_wall_clock_register_loses_that_write() -> None:
    real = FakeTime()
    fast_now = datetime.fromtimestamp((real.ms + _TEN_MINUTES) / 1000, UTC)
    fruit = WallClockFruit(id="w1", color="fast", written_at=fast_now)
    after_fast = _leaf(fruit, 2)
    b = WallClockFruit.from_doc(after_fast)
    b = b.model_copy(
        update={"color": "later", "written_at": datetime.fromtimestamp(real.ms / 1000 + 1, UTC)}
    )
    c = WallClockFruit.from_doc(after_fast)
    c.tags.add("ripe")
    seal(b, HybridClock("dc2-b"))
    seal(c, HybridClock("dc1-c"))
    merged = resolve_leaves(WallClockFruit, [_leaf(b, 3), _leaf(c, 3)]).body
    assert merged is not None
    assert WallClockFruit.from_doc(merged).color == "fast"  # the later write was lost
