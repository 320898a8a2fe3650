"""Resolving conflicts over the raw document API, and the reconciler, on one server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import tor_async_couchdb as tac
from support.merge_models import FakeTime, Fruit, Order, base_doc, branch
from support.waiting import eventually
from tor_async_couchdb._merge import HybridClock, resolve_leaves
from tor_async_couchdb._reconcile import (
    LocalDocCheckpoint,
    MemoryCheckpoint,
    Reconciler,
    fetch_leaves,
    resolve_document,
)


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
    await db.bulk_docs([{**order, "_rev": "1-a"}], new_edits=False)
    await db.bulk_docs([{**order, "_rev": "2-b", "state": "paid"}], new_edits=False)
    await db.bulk_docs([{"_id": "o1", "_rev": "2-c", "_deleted": True}], new_edits=False)
    await resolve_document(db, "o1", Order)
    with pytest.raises(tac.NotFound):
        await db.get_doc("o1")
    await db.put_doc({**order, "state": "again"})  # re-created, and not undone again
    assert (await resolve_document(db, "o1", Order)).written == ()
    assert (await db.get_doc("o1"))["state"] == "again"


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
