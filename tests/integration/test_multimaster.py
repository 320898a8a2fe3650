"""Three data centers (embedded servers) replicating continuously both ways, writers in all
three, a partition and its healing, and a reconciler in every data center."""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest

import tor_async_couchdb as tac
from conftest import unique_db_name
from support.merge_models import Fruit, Order
from support.waiting import eventually
from tor_async_couchdb._merge import HybridClock, canonical_bytes, resolve_leaves, seal
from tor_async_couchdb._reconcile import LocalDocCheckpoint, Reconciler, fetch_leaves
from tor_async_couchdb.testing import CouchServer

pytestmark = pytest.mark.multi_server

_MODELS = tac.ModelSet(Fruit, Order)
_DOCS = [f"fruit-{n}" for n in range(4)]


@dataclass
class DataCenter:
    number: int
    server: CouchServer
    couch: tac.CouchDB
    db: tac.Database
    replications: list[str] = field(default_factory=list)

    def url(self, epoch: int) -> str:
        if self.server.is_external:
            # A real CouchDB: the replicator needs the credentials; a cancelled replication
            # restarts between the same URLs.
            scheme, _, rest = self.server.url.partition("://")
            return f"{scheme}://{self.server.user}:{self.server.password}@{rest}/{self.db.name}"
        # No credentials: pouchdb-server's new databases are public (see test_couch_replication).
        # pouchdb-server never restarts a cancelled replication between the same two URLs
        # (the new _replicator document is accepted and then does nothing): a healed link
        # names the database with a trailing slash.
        return f"{self.server.url}/{self.db.name}" + "/" * (epoch % 2)


async def _open(stack: AsyncExitStack, servers: Sequence[CouchServer]) -> list[DataCenter]:
    """A data center on each server, each with a new database of one name (deleted after)."""
    name = unique_db_name("mm")
    centers = []
    for number, server in enumerate(servers):
        couch = await stack.enter_async_context(tac.CouchDB(server.url, auth=server.auth))
        db = couch.database(name)
        await db.create()
        stack.push_async_callback(db.delete_database, missing_ok=True)
        centers.append(DataCenter(number, server, couch, db))
    return centers


def _servers(
    first: CouchServer, start: Callable[..., CouchServer], count: int
) -> list[CouchServer]:
    """``first`` (the session's server) and ``count - 1`` more: embedded ones in memory, or
    the further servers of ``COUCHDB_URL`` (so that three names there are three data
    centers)."""
    return [first, *(start(in_memory=True) for _ in range(count - 1))]


async def _connect(centers: Sequence[DataCenter], epoch: int) -> None:
    for source in centers:
        for target in centers:
            if source is not target:
                doc_id = f"dc{source.number}-to-dc{target.number}-{epoch}"
                await source.couch.schedule_replication(
                    doc_id, source.url(epoch), target.url(epoch)
                )
                source.replications.append(doc_id)


async def _partition(centers: Sequence[DataCenter]) -> None:
    for center in centers:
        for doc_id in center.replications:
            await center.couch.cancel_replication(doc_id)
        center.replications.clear()


async def read_merged(db: tac.Database, doc_id: str) -> Fruit:
    """The document as its leaves merge: a write to a conflicted document must start there,
    or a writer's own counter entry could go back to an older branch's value."""
    doc = await db.get_doc(doc_id, conflicts=True)
    if "_conflicts" not in doc:
        return Fruit.from_doc(doc)
    body = resolve_leaves(Fruit, await fetch_leaves(db, doc_id)).body
    assert body is not None
    return Fruit.from_doc(body)


@dataclass
class Acked:
    """What the writers were told was saved."""

    eaten: dict[str, int] = field(default_factory=dict)
    tags: dict[str, dict[str, bool]] = field(default_factory=dict)  # doc -> tag -> present


async def _writer(center: DataCenter, rng: random.Random, acked: Acked, stop: asyncio.Event) -> int:
    clock = HybridClock(f"dc{center.number}-writer")
    writes = 0
    while not stop.is_set():
        doc_id = rng.choice(_DOCS)
        op, arg = rng.choice(("eat", "tag", "untag", "color")), rng.randrange(1, 6)
        tag = f"dc{center.number}-t{arg}"
        while True:  # the store's conflict-retry loop, by hand
            fruit = await read_merged(center.db, doc_id)
            if op == "eat":
                fruit.eaten.add(arg)
            elif op == "tag":
                fruit.tags.add(tag)
            elif op == "untag":
                fruit.tags.discard(tag)
            else:
                fruit.color = f"dc{center.number}-{arg}"
            seal(fruit, clock)
            try:
                await center.db.put_doc(fruit.to_doc())
            except tac.Conflict:
                continue
            break
        writes += 1
        if op == "eat":
            acked.eaten[doc_id] = acked.eaten.get(doc_id, 0) + arg
        elif op in ("tag", "untag"):
            acked.tags.setdefault(doc_id, {})[tag] = op == "tag"
        await asyncio.sleep(rng.uniform(0, 0.02))
    return writes


async def _cancel(tasks: Sequence[asyncio.Task[Any]]) -> None:
    # On a failure, before the clients close: no task outlives the test.
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _new(doc_id: str) -> dict[str, Any]:
    fruit = Fruit(id=doc_id)
    seal(fruit, HybridClock("dc0-setup"))
    return fruit.to_doc()


async def _converged(centers: Sequence[DataCenter], doc_ids: Sequence[str]) -> bool:
    for doc_id in doc_ids:
        seen = set()
        for center in centers:
            try:
                doc = await center.db.get_doc(doc_id, conflicts=True)
            except tac.NotFound:
                seen.add(b"deleted")
                continue
            if "_conflicts" in doc:
                return False
            seen.add(canonical_bytes(doc))
        if len(seen) != 1:
            return False
    return True


async def _leaf_counts(centers: Sequence[DataCenter], doc_ids: Sequence[str]) -> list[int]:
    return [len(await fetch_leaves(c.db, doc_id)) for c in centers for doc_id in doc_ids]


_EVERY = [*_DOCS, "order-1", "fruit-doomed"]


async def _seed(centers: Sequence[DataCenter]) -> None:
    order = {"_id": "order-1", "type": "order_v1.0", "state": "new", "stamps": {}}
    docs = [order, *(_new(doc_id) for doc_id in [*_DOCS, "fruit-doomed"])]
    await centers[0].db.bulk_docs(docs)
    await _connect(centers, epoch=0)
    await eventually(lambda: _converged(centers, _EVERY), seconds=30)


async def _delete_versus_update(centers: Sequence[DataCenter]) -> None:
    """During the partition, dc0 deletes two documents that dc1 updates."""
    for doc_id in ("order-1", "fruit-doomed"):
        doc = await centers[0].db.get_doc(doc_id)
        await centers[0].db.delete_doc(doc_id, doc["_rev"])
        other = await centers[1].db.get_doc(doc_id)
        if doc_id == "order-1":
            await centers[1].db.put_doc({**other, "state": "paid"})
        else:
            fruit = Fruit.from_doc(other)
            fruit.color = "saved"
            seal(fruit, HybridClock("dc1-admin"))
            await centers[1].db.put_doc(fruit.to_doc())


async def _check_outcome(centers: Sequence[DataCenter], acked: Acked) -> None:
    await eventually(lambda: _converged(centers, _EVERY), seconds=60, poll=0.25)
    for doc_id in _DOCS:
        fruits = [Fruit.from_doc(await c.db.get_doc(doc_id)) for c in centers]
        assert {f.rev for f in fruits} == {fruits[0].rev}
        assert fruits[0].eaten.value == acked.eaten.get(doc_id, 0)
        expected = {tag for tag, on in acked.tags.get(doc_id, {}).items() if on}
        assert fruits[0].tags.value == expected
    with pytest.raises(tac.NotFound):
        await centers[2].db.get_doc("order-1")  # delete wins
    assert (await centers[2].db.get_doc("fruit-doomed"))["color"] == "saved"  # update wins


async def _check_quiet(centers: Sequence[DataCenter], reconcilers: Sequence[Reconciler]) -> None:
    # No ping-pong: with every reconciler still running, nothing changes any more.
    before = await _leaf_counts(centers, _EVERY)
    resolved = [r.metrics.resolved for r in reconcilers]
    await asyncio.sleep(1.5)
    assert await _leaf_counts(centers, _EVERY) == before
    assert [r.metrics.resolved for r in reconcilers] == resolved
    assert sum(r.metrics.resolved for r in reconcilers) > 0
    assert sum(r.metrics.failed + r.metrics.quarantined for r in reconcilers) == 0
    assert all(not r.metrics.unresolvable for r in reconcilers)


async def _run_data_centers(servers: Sequence[CouchServer], seed: int) -> None:
    rng = random.Random(seed)
    async with AsyncExitStack() as stack:
        centers = await _open(stack, servers)
        await _seed(centers)
        reconcilers = [
            Reconciler(c.db, _MODELS, checkpoint=LocalDocCheckpoint(c.db), heartbeat=1)
            for c in centers
        ]
        tasks = [asyncio.create_task(r.run()) for r in reconcilers]
        acked, stop = Acked(), asyncio.Event()
        writers = [
            asyncio.create_task(_writer(c, random.Random(rng.random()), acked, stop))
            for c in centers
        ]
        stack.push_async_callback(_cancel, [*tasks, *writers])
        await asyncio.sleep(0.8)
        await _partition(centers)
        await _delete_versus_update(centers)
        await asyncio.sleep(1.2)
        await _connect(centers, epoch=1)
        await asyncio.sleep(0.8)
        stop.set()
        assert sum(await asyncio.gather(*writers)) > 30
        await _check_outcome(centers, acked)
        await _check_quiet(centers, reconcilers)
        for reconciler in reconcilers:
            reconciler.stop()
        await asyncio.gather(*tasks)
        await _partition(centers)


async def test_three_data_centers_converge_without_lost_updates(
    couch_server: CouchServer, extra_servers: Callable[..., CouchServer]
) -> None:
    await _run_data_centers(_servers(couch_server, extra_servers, 3), seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_three_data_centers_over_more_seeds(
    couch_server: CouchServer, extra_servers: Callable[..., CouchServer], seed: int
) -> None:
    await _run_data_centers(_servers(couch_server, extra_servers, 3), seed=seed)


async def _same_leaves(dbs: Sequence[tac.Database], doc_id: str) -> None:
    from support.merge_models import FakeTime, base_doc, branch

    base = {**base_doc(), "_id": doc_id}
    leaves = [base]
    for number, ops in enumerate([[("eat", 4), ("add", 1)], [("color", 3)], [("add", 2)]]):
        time = FakeTime()
        leaf = branch(base, HybridClock(f"w{number}", now=time), ops, time)
        leaves.append({**leaf, "_id": doc_id})
    for db in dbs:
        for leaf in leaves:
            await db.bulk_docs([leaf], new_edits=False)


async def test_two_data_centers_resolving_at_once_write_the_same_revisions(
    couch_server: CouchServer, extra_servers: Callable[..., CouchServer]
) -> None:
    from tor_async_couchdb._reconcile import resolve_document

    async with AsyncExitStack() as stack:
        east, west = await _open(stack, _servers(couch_server, extra_servers, 2))
        await _same_leaves([east.db, west.db], "f1")
        # Both resolve the same conflict before either hears of the other's resolution.
        east_done = await resolve_document(east.db, "f1", Fruit)
        west_done = await resolve_document(west.db, "f1", Fruit)
        assert east_done.written == west_done.written
        assert len(east_done.written) == 3
        before = sorted(str(leaf["_rev"]) for leaf in await fetch_leaves(east.db, "f1"))
        await east.couch.replicate(east.url(0), west.url(0))
        await west.couch.replicate(west.url(0), east.url(0))
        for center in (east, west):
            leaves = await fetch_leaves(center.db, "f1")
            assert sorted(str(leaf["_rev"]) for leaf in leaves) == before  # nothing new
            assert "_conflicts" not in await center.db.get_doc("f1", conflicts=True)
            again = await resolve_document(center.db, "f1", Fruit)
            assert again.written == ()


async def test_a_deferring_reconciler_finds_the_first_data_centers_resolution(
    couch_server: CouchServer, extra_servers: Callable[..., CouchServer]
) -> None:
    async with AsyncExitStack() as stack:
        east, west = await _open(stack, _servers(couch_server, extra_servers, 2))
        await _same_leaves([east.db, west.db], "f1")
        first = Reconciler(east.db, Fruit, heartbeat=1, settle=0.1)
        deferring = Reconciler(west.db, Fruit, heartbeat=1, settle=0.1, defer=3.0)
        tasks = [asyncio.create_task(r.run()) for r in (first, deferring)]
        stack.push_async_callback(_cancel, tasks)
        await _connect([east, west], epoch=0)
        stack.push_async_callback(_partition, [east, west])
        await eventually(lambda: first.metrics.resolved == 1, seconds=30)
        await eventually(lambda: deferring.metrics.inspected >= 1, seconds=30)
        for db in (east.db, west.db):
            await eventually(functools.partial(_no_conflicts, db, "f1"), seconds=30)
        assert deferring.metrics.resolved == 0  # it found the merge already written
        assert (await east.db.get_doc("f1"))["_rev"] == (await west.db.get_doc("f1"))["_rev"]
        for reconciler in (first, deferring):
            reconciler.stop()
        await asyncio.gather(*tasks)


async def _no_conflicts(db: tac.Database, doc_id: str) -> bool:
    return "_conflicts" not in await db.get_doc(doc_id, conflicts=True)
