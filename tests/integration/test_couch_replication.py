"""Replication between two embedded servers, and the conflicts it leaves behind."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

import tor_async_couchdb as tac
from tor_async_couchdb.testing import CouchServer


def _url(server: CouchServer, db: str) -> str:
    # No credentials: pouchdb-server cannot take them in a header (the object form), and its
    # new databases are public.
    return f"{server.url}/{db}"


@pytest.mark.multi_server
async def test_replication_and_conflicts(
    extra_servers: Callable[..., CouchServer], caplog: pytest.LogCaptureFixture
) -> None:
    east, west = extra_servers(in_memory=True), extra_servers(in_memory=True)
    async with (
        tac.CouchDB(east.url, auth=east.auth) as east_couch,
        tac.CouchDB(west.url, auth=west.auth) as west_couch,
    ):
        source, target = east_couch.database("orders"), west_couch.database("orders")
        await source.create()
        await target.create()
        base = await source.put_doc({"_id": "order/1", "state": "new"})
        await source.bulk_docs([{"_id": f"o{n}", "n": n} for n in range(5)])

        answer = await east_couch.replicate("orders", _url(west, "orders"))
        assert answer["ok"]
        assert (await target.get_doc("order/1"))["state"] == "new"
        assert (await target.info())["doc_count"] == 6

        # Both sides edit the same revision: after replicating back and forth, one winner
        # and one conflict, the same on both servers.
        await source.put_doc({"_id": "order/1", "_rev": base["rev"], "state": "paid"})
        await target.put_doc({"_id": "order/1", "_rev": base["rev"], "state": "cancelled"})
        await east_couch.replicate("orders", _url(west, "orders"))
        await west_couch.replicate("orders", _url(east, "orders"))
        east_doc = await source.get_doc("order/1", conflicts=True)
        west_doc = await target.get_doc("order/1", conflicts=True)
        assert east_doc["_rev"] == west_doc["_rev"]
        assert east_doc["_conflicts"] == west_doc["_conflicts"]
        assert len(east_doc["_conflicts"]) == 1
        leaves = await source.get_open_revs("order/1")
        assert sorted(leaf["ok"]["state"] for leaf in leaves) == ["cancelled", "paid"]
        loser = east_doc["_conflicts"][0]
        picked = await source.get_open_revs("order/1", [loser])
        assert picked[0]["ok"]["_rev"] == loser
        await source.delete_doc("order/1", loser)
        assert "_conflicts" not in await source.get_doc("order/1", conflicts=True)

        replicated = await east_couch.replicate(
            "orders", "orders_copy", create_target=True, doc_ids=["o1", "o2"]
        )
        assert replicated["ok"]
        copy_ids = [row["id"] async for row in east_couch.database("orders_copy").all_docs()]
        assert {"o1", "o2"} <= set(copy_ids)  # pouchdb-server ignores doc_ids (copies all)
        assert isinstance(await east_couch.active_tasks(), list)
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert west.password not in logged
    assert east.password not in logged


@pytest.mark.embedded_only
async def test_new_edits_false_makes_conflicts(db: tac.Database) -> None:
    results = await db.bulk_docs(
        [{"_id": "c", "_rev": "1-aaa", "v": 1}, {"_id": "d", "_rev": "1-ddd"}], new_edits=False
    )
    assert [result.id for result in results] == ["c", "d"]
    await db.bulk_docs([{"_id": "c", "_rev": "1-bbb", "v": 2}], new_edits=False)
    doc = await db.get_doc("c", conflicts=True)
    assert doc["_rev"] == "1-bbb"
    assert doc["_conflicts"] == ["1-aaa"]
    assert len(await db.get_open_revs("c")) == 2


@pytest.mark.multi_server
async def test_scheduled_replication_keeps_copying_until_cancelled(
    extra_servers: Callable[..., CouchServer],
) -> None:
    east, west = extra_servers(in_memory=True), extra_servers(in_memory=True)
    async with (
        tac.CouchDB(east.url, auth=east.auth) as east_couch,
        tac.CouchDB(west.url, auth=west.auth) as west_couch,
    ):
        source, target = east_couch.database("stock"), west_couch.database("stock")
        await source.create()
        await target.create()
        rev = await east_couch.schedule_replication(
            "east_to_west", _url(east, "stock"), _url(west, "stock")
        )
        assert rev.startswith("1-")
        # The id is taken: CouchDB answers 409; pouchdb-server 403 (the doc is "triggered").
        with pytest.raises((tac.Conflict, tac.Forbidden)):
            await east_couch.schedule_replication(
                "east_to_west", _url(east, "stock"), _url(west, "stock")
            )
        for n in range(3):
            await source.put_doc({"_id": f"item{n}"})
            await wait_for_doc(target, f"item{n}")
        assert await east_couch.cancel_replication("east_to_west")
        assert not await east_couch.cancel_replication("east_to_west")


async def wait_for_doc(db: tac.Database, doc_id: str, seconds: float = 30) -> None:
    """Poll until ``doc_id`` exists (a continuous replication copies it soon, not at once)."""
    async with asyncio.timeout(seconds):
        async for change in db.feed(since=0, doc_ids=[doc_id], heartbeat=1.0):
            if change["id"] == doc_id:
                return
