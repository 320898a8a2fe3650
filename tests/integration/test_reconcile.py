"""Resolving conflicts over the raw document API, and the reconciler, on one server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

import pytest

import tor_async_couchdb as tac
from support.merge_models import FakeTime, Fruit, Order, base_doc, branch
from support.waiting import eventually
from tor_async_couchdb._merge import HybridClock, LeafHooks, resolve_leaves
from tor_async_couchdb._reconcile import (
    LocalDocCheckpoint,
    MemoryCheckpoint,
    Reconciler,
    fetch_leaves,
    resolve_document,
)
from tor_async_couchdb.testing import CouchServer


async def _conflict(db: tac.Database, doc_id: str, *ops: list[tuple[str, int]]) -> None:
    """Leaves of ``doc_id`` as replication leaves them: one branch per list of operations."""
    base = {**base_doc(), "_id": doc_id}
    await db.bulk_docs([base], new_edits=False)
    for number, branch_ops in enumerate(ops):
        time = FakeTime()
        leaf = branch(base, HybridClock(f"w{number}", now=time), branch_ops, time)
        await db.bulk_docs([{**leaf, "_id": doc_id}], new_edits=False)


async def _caught_up(reconciler: Reconciler) -> bool:
    return await reconciler.lag() == 0


async def _leaf_revs(db: tac.Database, doc_id: str) -> list[str]:
    return sorted(str(leaf["_rev"]) for leaf in await fetch_leaves(db, doc_id))


async def test_a_resolution_leaves_one_live_leaf_and_is_not_repeated(db: tac.Database) -> None:
    await _conflict(db, "f1", [("eat", 4), ("add", 1)], [("eat", 3), ("color", 2)], [("add", 2)])
    assert len((await db.get_doc("f1", conflicts=True))["_conflicts"]) == 2
    resolved = await resolve_document(db, "f1", Fruit)
    assert len(resolved.written) == 3  # the merged child and two tombstones
    doc = await db.get_doc("f1", conflicts=True)
    assert "_conflicts" not in doc
    fruit = Fruit.from_doc(doc)
    assert (fruit.eaten.value, fruit.tags.value, fruit.color) == (3, frozenset({"t1", "t2"}), "c2")
    leaves = await _leaf_revs(db, "f1")
    again = await resolve_document(db, "f1", Fruit)
    assert again.written == ()
    assert await _leaf_revs(db, "f1") == leaves
    assert (await db.get_doc("f1"))["_rev"] == doc["_rev"]


async def test_a_half_done_resolution_converges_without_a_new_revision(db: tac.Database) -> None:
    await _conflict(db, "f2", [("eat", 4)], [("eat", 3)])
    leaves = await fetch_leaves(db, "f2")
    resolution = resolve_leaves(Fruit, leaves)
    assert resolution.merged is not None
    (only_child,) = await db.bulk_docs([resolution.merged])  # then the process died
    resumed = await resolve_document(db, "f2", Fruit)
    assert resumed.resolution.merged is None  # the child already is the merge
    assert len(resumed.written) == 1  # the loser's tombstone only
    doc = await db.get_doc("f2", conflicts=True)
    assert doc["_rev"] == only_child.rev
    assert "_conflicts" not in doc


async def test_the_reconciler_resolves_what_it_sees_and_reports_bad_leaves(
    db: tac.Database, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoint = LocalDocCheckpoint(db, "test")
    reconciler = Reconciler(db, tac.ModelSet(Fruit, Order), checkpoint=checkpoint, heartbeat=1)
    task = asyncio.create_task(reconciler.run())
    await _conflict(db, "f3", [("pick", 2)], [("pick", 3)])
    for rev in ("1-a", "1-b"):
        bad = {"_id": "bad", "_rev": rev, "type": "fruit_v1.0", "color": 3}
        await db.bulk_docs([bad], new_edits=False)
    await db.put_doc({"_id": "plain"})
    await eventually(lambda: reconciler.metrics.resolved >= 1)
    await eventually(lambda: bool(reconciler.metrics.unresolvable))
    await eventually(lambda: _caught_up(reconciler))
    reconciler.stop()
    await task
    metrics = reconciler.metrics
    assert metrics.unresolvable == {"invalid": 1}
    assert metrics.failed == 0
    assert Fruit.from_doc(await db.get_doc("f3")).picked.value == 5
    assert "_conflicts" in await db.get_doc("bad", conflicts=True)  # left as it was
    assert await checkpoint.load() == metrics.last_seq
    assert "left bad unresolved" in caplog.text


async def test_cancelling_the_reconciler_saves_its_checkpoint(db: tac.Database) -> None:
    checkpoint = MemoryCheckpoint()
    reconciler = Reconciler(db, Fruit, checkpoint=checkpoint, heartbeat=1)
    task = asyncio.create_task(reconciler.run())
    await db.put_doc({"_id": "a"})
    await eventually(lambda: reconciler.metrics.changes >= 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert checkpoint.seq is not None
    assert checkpoint.seq == reconciler.metrics.last_seq


async def test_delete_wins_and_update_wins_on_the_server(db: tac.Database) -> None:
    order: dict[str, Any] = {"_id": "o1", "type": "order_v1.0", "state": "new", "stamps": {}}
    # As replication leaves them: a paid update and a delete, both children of 1-a.
    paid = {**order, "_rev": "2-b", "state": "paid", "_revisions": {"start": 2, "ids": ["b", "a"]}}
    deleted = {"_id": "o1", "_rev": "2-c", "_deleted": True}
    await db.bulk_docs([{**order, "_rev": "1-a"}], new_edits=False)
    await db.bulk_docs([paid], new_edits=False)
    await db.bulk_docs(
        [{**deleted, "_revisions": {"start": 2, "ids": ["c", "a"]}}], new_edits=False
    )
    assert sorted(await _leaf_revs(db, "o1")) == ["2-b", "2-c"]
    resolved = await resolve_document(db, "o1", Order)
    assert (len(resolved.written), resolved.raced) == (2, 0)  # a tombstone and a closure
    with pytest.raises(tac.NotFound):
        await db.get_doc("o1")
    await db.put_doc({**order, "state": "again"})  # re-created, and not undone again
    assert (await resolve_document(db, "o1", Order)).written == ()
    assert (await db.get_doc("o1"))["state"] == "again"
    # Update wins (Fruit's policy): the same history keeps the update, the delete closed.
    fruit = {"_id": "f9", "type": "fruit_v1.0", "stamps": {}, "color": "red"}
    await db.bulk_docs([{**fruit, "_rev": "1-a"}], new_edits=False)
    blue = {**fruit, "_rev": "2-b", "color": "blue", "_revisions": paid["_revisions"]}
    await db.bulk_docs([blue], new_edits=False)
    await db.bulk_docs(
        [{**deleted, "_id": "f9", "_revisions": {"start": 2, "ids": ["c", "a"]}}], new_edits=False
    )
    resolved = await resolve_document(db, "f9", Fruit)
    assert (len(resolved.written), resolved.raced) == (1, 0)
    assert (await db.get_doc("f9", conflicts=True))["color"] == "blue"
    assert "_conflicts" not in await db.get_doc("f9", conflicts=True)
    assert (await resolve_document(db, "f9", Fruit)).written == ()


async def test_a_reconciler_restarted_after_a_crash_mid_resolution_converges(
    db: tac.Database,
) -> None:
    await _conflict(db, "f4", [("eat", 4)], [("eat", 3)], [("add", 1)])
    resolution = resolve_leaves(Fruit, await fetch_leaves(db, "f4"))
    assert resolution.merged is not None
    await db.bulk_docs([resolution.merged])  # the child, then the crash
    await db.bulk_docs([resolution.tombstones[0]])  # one of two tombstones made it
    checkpoint = LocalDocCheckpoint(db, "crashed")  # never saved: starts from scratch
    reconciler = Reconciler(db, Fruit, checkpoint=checkpoint, heartbeat=1)
    task = asyncio.create_task(reconciler.run())
    await eventually(lambda: reconciler.metrics.resolved >= 1)
    reconciler.stop()
    await task
    doc = await db.get_doc("f4", conflicts=True)
    assert "_conflicts" not in doc
    assert doc["_rev"].startswith("3-")  # still the child written before the crash
    assert Fruit.from_doc(doc).eaten.value == 3
    assert len(await fetch_leaves(db, "f4")) == 3  # the child and two tombstones


# --- the store: sealing on write, resolving on read ------------------------------------------


class FruitAsStored(Fruit, type_name="fruit", version="1.0"):
    """Fruit read as CouchDB's winner, its conflicts only reported."""

    read_policy: ClassVar = "winner"


@pytest.fixture
async def clocked(couch_server: CouchServer, db: tac.Database) -> AsyncIterator[tac.Database]:
    """``db`` through a client whose writes are sealed by the clock of node ``dc1-w1``."""
    async with tac.CouchDB(
        couch_server.url, auth=couch_server.auth, clock=HybridClock("dc1-w1")
    ) as client:
        yield client.database(db.name)


async def test_the_store_seals_counters_sets_and_registers_on_write(
    clocked: tac.Database,
) -> None:
    fruit = Fruit(id="s1")
    fruit.eaten.add(3)
    fruit.tags.add("x")
    fruit.color = "red"
    saved = await clocked.save(fruit)
    assert fruit.eaten.pending == 3  # the caller's model is left as it was
    stored = await clocked.get_doc("s1")
    assert stored["eaten"] == {"p": {"dc1-w1": 3}, "n": {}}
    assert stored["tags"] == {"dots": [["x", "dc1-w1", 1]], "ctx": {"dc1-w1": 1}}
    assert stored["stamps"]["color"].endswith("@dc1-w1")
    assert (saved.eaten.value, saved.unsealed()) == (3, ())

    def change(current: Fruit) -> Fruit:
        current.eaten.subtract(1)
        current.tags.add("y")
        return current

    updated = await clocked.update(Fruit, "s1", change)
    assert (updated.eaten.value, sorted(updated.tags)) == (2, ["x", "y"])
    stored = await clocked.get_doc("s1")
    assert stored["eaten"] == {"p": {"dc1-w1": 3}, "n": {"dc1-w1": 1}}
    more = [Fruit(id=f"m{n}") for n in range(3)]
    for model in more:
        model.picked.add(2)
    results = await clocked.save_many(more)
    assert all(result.ok for result in results)
    assert (await clocked.get_doc("m2"))["picked"] == {"p": {"dc1-w1": 2}}
    assert stored["stamps"]["color"] == (await clocked.get_doc("s1"))["stamps"]["color"]


async def test_reads_resolve_a_conflicted_document_and_writes_start_from_the_merge(
    clocked: tac.Database,
) -> None:
    await _conflict(clocked, "r1", [("eat", 4), ("add", 1)], [("eat", 3)], [("add", 2)])
    expected = resolve_leaves(Fruit, await fetch_leaves(clocked, "r1"))
    merged = await clocked.get(Fruit, "r1")
    assert merged.rev == expected.winner
    assert (merged.eaten.value, sorted(merged.tags)) == (3, ["t1", "t2"])
    winner = await clocked.get(FruitAsStored, "r1")  # read_policy "winner": one leaf only
    assert winner.eaten.value != 3 or sorted(winner.tags) != ["t1", "t2"]

    report = await clocked.conflicts(Fruit, "r1")
    assert report.conflicted
    assert report.problem is None
    assert (len(report.leaves), report.deleted) == (3, ())
    assert report.winner == expected.winner
    assert report.resolved is not None
    assert report.resolved.eaten.value == 3

    def eat(current: Fruit) -> Fruit:
        current.eaten.add(10)
        return current

    await clocked.update(Fruit, "r1", eat)  # a child of the winner, holding the merge
    await resolve_document(clocked, "r1", Fruit)
    doc = await clocked.get_doc("r1", conflicts=True)
    assert "_conflicts" not in doc
    final = Fruit.from_doc(doc)
    assert (final.eaten.value, sorted(final.tags)) == (13, ["t1", "t2"])
    settled = await clocked.conflicts(Fruit, "r1")
    assert not settled.conflicted


async def test_reads_follow_the_delete_policy_and_report_bad_leaves(
    clocked: tac.Database,
) -> None:
    order: dict[str, Any] = {"_id": "o2", "type": "order_v1.0", "state": "new", "stamps": {}}
    history = {"start": 2, "ids": ["b", "a"]}
    await clocked.bulk_docs([{**order, "_rev": "1-a"}], new_edits=False)
    await clocked.bulk_docs([{**order, "_rev": "2-b", "_revisions": history}], new_edits=False)
    await clocked.bulk_docs(
        [
            {
                "_id": "o2",
                "_rev": "2-c",
                "_deleted": True,
                "_revisions": {"start": 2, "ids": ["c", "a"]},
            }
        ],
        new_edits=False,
    )
    with pytest.raises(tac.NotFound):
        await clocked.get(Order, "o2")  # delete wins: the update is not read
    report = await clocked.conflicts(Order, "o2")
    assert (report.deleted, report.resolved, len(report.leaves)) == (("2-c",), None, 1)

    await _conflict(clocked, "b1", [("eat", 4)], [("eat", 3)])
    base = {**base_doc(), "_id": "b1"}
    bad = {**base, "eaten": {"p": {"w0": -5}}, "_rev": "2-000"}  # a hand edit, that loses
    bad["_revisions"] = {"start": 2, "ids": ["000", base["_rev"].partition("-")[2]]}
    await clocked.bulk_docs([bad], new_edits=False)
    unmerged = await clocked.conflicts(Fruit, "b1")
    assert unmerged.problem is not None
    assert unmerged.problem.kind == "unreadable_metadata"
    assert unmerged.resolved is None
    read = await clocked.get(Fruit, "b1")  # read as CouchDB's winner, not guessed
    assert read.rev == (await clocked.get_doc("b1"))["_rev"]


class Plain(tac.Model, type_name="plain", version="1.0"):
    """A model without merge policies."""

    n: int = 0


class Buggy(tac.Mergeable, type_name="buggy", version="1.0"):
    """A model whose own merge has a bug."""

    n: int = 0

    @classmethod
    def merge(cls, leaves: Sequence[Buggy]) -> Buggy:
        raise RuntimeError("a bug in a model's merge")


def _forged_leaves_fail(stored: Mapping[str, Any]) -> None:
    if stored.get("forged"):
        raise ValueError("signature mismatch")


async def test_every_kind_of_bad_input_is_counted_and_never_ends_the_loop(
    db: tac.Database,
) -> None:
    async def two_roots(doc_id: str, first: dict[str, Any], second: dict[str, Any]) -> None:
        await db.bulk_docs([{**first, "_id": doc_id, "_rev": "1-a"}], new_edits=False)
        await db.bulk_docs([{**second, "_id": doc_id, "_rev": "1-b"}], new_edits=False)

    fruit = {"type": "fruit_v1.0", "stamps": {}}
    await two_roots("newer", fruit, {**fruit, "type": "fruit_v9.0"})
    await two_roots("tampered", fruit, {**fruit, "forged": True})
    await two_roots("plain", {"type": "plain_v1.0", "n": 1}, {"type": "plain_v1.0", "n": 2})
    await two_roots("edited", fruit, {**fruit, "eaten": {"p": {"w1": "many"}, "n": {}}})
    buggy = {"type": "buggy_v1.0", "stamps": {}}
    await two_roots("buggy", {**buggy, "n": 1}, {**buggy, "n": 2})
    await _conflict(db, "good", [("eat", 4)], [("eat", 5)])
    hooks = LeafHooks(verify=_forged_leaves_fail)
    models = tac.ModelSet(Fruit, Plain, Buggy)
    reconciler = Reconciler(db, models, hooks=hooks, heartbeat=1, settle=0.1)
    task = asyncio.create_task(reconciler.run())
    await eventually(lambda: reconciler.metrics.inspected + reconciler.metrics.failed >= 6)
    await eventually(lambda: _caught_up(reconciler))
    assert not task.done()  # nothing ended the loop
    reconciler.stop()
    await task
    metrics = reconciler.metrics
    assert metrics.unresolvable == {
        "newer_version": 1,
        "no_policy": 1,
        "unreadable_metadata": 1,
    }
    assert (metrics.quarantined, metrics.failed, metrics.resolved) == (1, 1, 1)
    for doc_id in ("newer", "tampered", "plain", "edited", "buggy"):
        assert len(await fetch_leaves(db, doc_id)) == 2  # left as they were
    assert Fruit.from_doc(await db.get_doc("good")).eaten.value == 5
