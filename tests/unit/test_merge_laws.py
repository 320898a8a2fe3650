"""Every merge policy is commutative, associative and idempotent, and the merge of a set of
leaves is byte-identical whatever their order (hypothesis over simulated histories)."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from support.merge_models import OPS, FakeTime, Fruit, base_doc, branch, content, join
from tor_async_couchdb._merge import HybridClock, resolve_leaves

_ops = st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 4)), max_size=6)
_branches = st.lists(_ops, min_size=3, max_size=3)


def _leaves(all_ops: list[list[tuple[str, int]]], skew: int = 0) -> list[dict[str, Any]]:
    base = base_doc()
    leaves = []
    for number, ops in enumerate(all_ops):
        time = FakeTime(1_800_000_000_000 + (skew if number == 0 else 0))
        leaves.append(branch(base, HybridClock(f"w{number}", now=time), ops, time))
    return leaves


@settings(max_examples=60, deadline=None)
@given(_branches)
def test_join_is_commutative_associative_idempotent(all_ops: list[list[tuple[str, int]]]) -> None:
    a, b, c = _leaves(all_ops)
    assert content(join(a, b)) == content(join(b, a))
    assert content(join(join(a, b), c)) == content(join(a, join(b, c)))
    assert content(join(a, a)) == content(a)
    ab = join(a, b)
    assert content(join(ab, a)) == content(ab)  # absorbs what it already holds


@settings(max_examples=40, deadline=None)
@given(_branches, st.integers(0, 600_000))
def test_any_order_gives_identical_writes(all_ops: list[list[tuple[str, int]]], skew: int) -> None:
    leaves = _leaves(all_ops, skew)
    outcomes = {
        tuple(repr(write) for write in resolve_leaves(Fruit, list(order)).writes)
        for order in itertools.permutations(leaves)
    }
    assert len(outcomes) == 1


@settings(max_examples=60, deadline=None)
@given(_branches)
def test_counters_and_sets_lose_no_update(all_ops: list[list[tuple[str, int]]]) -> None:
    leaves = _leaves(all_ops)
    merged = Fruit.from_doc(join(*leaves))
    assert merged.eaten.value == sum(arg - 2 for ops in all_ops for op, arg in ops if op == "eat")
    assert merged.picked.value == sum(arg for ops in all_ops for op, arg in ops if op == "pick")
    assert merged.tags.value == _expected_tags(all_ops)


def _expected_tags(all_ops: list[list[tuple[str, int]]]) -> frozenset[str]:
    # Add wins: present if some branch's last word on the element was an add (the branches
    # start from an empty set, so every element comes from an add).
    present = set()
    for ops in all_ops:
        last: dict[str, str] = {}
        for op, arg in ops:
            if op in ("add", "remove"):
                last[f"t{arg}"] = op
        present |= {tag for tag, op in last.items() if op == "add"}
    return frozenset(present)


@settings(max_examples=40, deadline=None)
@given(_branches)
def test_resolving_a_resolution_writes_nothing_new(all_ops: list[list[tuple[str, int]]]) -> None:
    leaves = _leaves(all_ops)
    first = resolve_leaves(Fruit, leaves)
    if first.merged is None:
        return
    written = {**first.merged, "_rev": "99-merged"}
    # Killed after the merged child was written but before the tombstones: the next pass
    # writes only the tombstones (the child already is the merge), or nothing at all.
    losers = [leaf for leaf in leaves if leaf["_rev"] != first.winner]
    again = resolve_leaves(Fruit, [written, *losers])
    if again.winner == "99-merged":
        assert again.merged is None
    assert {t["_rev"] for t in again.tombstones} >= {
        leaf["_rev"] for leaf in losers if leaf["_rev"] != again.winner
    }
    # Once the tombstones are written too, the winner is the only live leaf: nothing to do.
    closed = [{**t, "_rev": f"{t['_rev'].partition('-')[0]}9-closed"} for t in again.tombstones]
    assert resolve_leaves(Fruit, [written, *closed]).writes == []
