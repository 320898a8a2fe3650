"""Replication between two servers (embedded or COUCHDB_URL's), and the conflicts it leaves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

import tor_async_couchdb as tac
from conftest import unique_db_name
from tor_async_couchdb.testing import CouchServer


def _url(server: CouchServer, db: str) -> str:
    if server.is_external:
        # A real CouchDB's replicator needs the credentials (the client moves them into a
        # header, so they are neither stored in the replication's id nor logged).
        scheme, _, rest = server.url.partition("://")
        return f"{scheme}://{server.user}:{server.password}@{rest}/{db}"
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
        name, copy_name = unique_db_name("orders"), unique_db_name("orders_copy")
        source, target = east_couch.database(name), west_couch.database(name)
        copy = east_couch.database(copy_name)
        await source.create()
        try:
            await target.create()
            base = await source.put_doc({"_id": "order/1", "state": "new"})
            await source.bulk_docs([{"_id": f"o{n}", "n": n} for n in range(5)])

            answer = await east_couch.replicate(_url(east, name), _url(west, name))
            assert answer["ok"]
            assert (await target.get_doc("order/1"))["state"] == "new"
            assert (await target.info())["doc_count"] == 6

            # Both sides edit the same revision: after replicating back and forth, one winner
            # and one conflict, the same on both servers.
            await source.put_doc({"_id": "order/1", "_rev": base["rev"], "state": "paid"})
            await target.put_doc({"_id": "order/1", "_rev": base["rev"], "state": "cancelled"})
            await east_couch.replicate(_url(east, name), _url(west, name))
            await west_couch.replicate(_url(west, name), _url(east, name))
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

            # CouchDB 3 takes no local database names (both ends are URLs); pouchdb-server
            # takes them, and answers 401 to its own URLs without credentials here.
            ends = (
                (_url(east, name), _url(east, copy_name)) if east.is_external else (name, copy_name)
            )
            replicated = await east_couch.replicate(*ends, create_target=True, doc_ids=["o1", "o2"])
            assert replicated["ok"]
            copy_ids = [row["id"] async for row in east_couch.database(copy_name).all_docs()]
            if east.is_embedded:
                assert {"o1", "o2"} <= set(copy_ids)  # pouchdb-server ignores doc_ids (copies all)
            else:
                assert sorted(copy_ids) == ["o1", "o2"]
            assert isinstance(await east_couch.active_tasks(), list)
        finally:
            for db in (source, target, copy):
                await db.delete_database(missing_ok=True)
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert west.password not in logged
    assert east.password not in logged


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
        name = unique_db_name("stock")
        replication = f"east_to_west_{tac.new_id()}"
        source, target = east_couch.database(name), west_couch.database(name)
        await source.create()
        try:
            await target.create()
            rev = await east_couch.schedule_replication(
                replication, _url(east, name), _url(west, name)
            )
            assert rev.startswith("1-")
            # The id is taken: CouchDB answers 409; pouchdb-server 403 (the doc is "triggered").
            with pytest.raises((tac.Conflict, tac.Forbidden)):
                await east_couch.schedule_replication(
                    replication, _url(east, name), _url(west, name)
                )
            for n in range(3):
                await source.put_doc({"_id": f"item{n}"})
                await wait_for_doc(target, f"item{n}")
            assert await east_couch.cancel_replication(replication)
            assert not await east_couch.cancel_replication(replication)
        finally:
            await east_couch.cancel_replication(replication)
            for db in (source, target):
                await db.delete_database(missing_ok=True)


async def wait_for_doc(db: tac.Database, doc_id: str, seconds: float = 30) -> None:
    """Poll until ``doc_id`` exists (a continuous replication copies it soon, not at once)."""
    async with asyncio.timeout(seconds):
        async for change in db.feed(since=0, doc_ids=[doc_id], heartbeat=1.0):
            if change["id"] == doc_id:
                return
