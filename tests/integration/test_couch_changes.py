"""_changes, one-shot and continuous, against the real server, also through a failing proxy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest

import tor_async_couchdb as tac
from support.tcpproxy import TCPProxy
from tor_async_couchdb.testing import CouchServer


async def test_one_shot_changes(db: tac.Database) -> None:
    await db.bulk_docs([{"_id": f"d{n}", "n": n} for n in range(5)])
    results, last = await db.changes()
    assert sorted(change["id"] for change in results) == [f"d{n}" for n in range(5)]
    more, again = await db.changes(since=last)
    assert more == []
    assert again == last
    await db.put_doc({"_id": "late/1"})
    newer, _ = await db.changes(since=last, include_docs=True)
    assert [(c["id"], c["doc"]["_id"]) for c in newer] == [("late/1", "late/1")]
    limited, _ = await db.changes(limit=2)
    assert len(limited) == 2
    picked, _ = await db.changes(doc_ids=["d1", "d3"])
    assert sorted(c["id"] for c in picked) == ["d1", "d3"]
    styled, _ = await db.changes(style="all_docs", conflicts=True)
    assert all("rev" in c["changes"][0] for c in styled)


async def _collect(feed: AsyncIterator[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    async for change in feed:
        seen.append(change)
        if len(seen) == count:
            break
    return seen


async def test_feed_yields_new_changes(db: tac.Database) -> None:
    await db.put_doc({"_id": "before"})
    feed = db.feed(include_docs=True, heartbeat=1.0)
    new = ["x/1", "x 2", "x+3"]
    seen: list[dict[str, Any]] = []

    async def consume() -> None:
        async for change in feed:
            seen.append(change)
            if {c["id"] for c in seen} >= set(new):
                return

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.3)
    for doc_id in new:
        await db.put_doc({"_id": doc_id})
    await asyncio.wait_for(task, 10)
    await feed.aclose()
    ids = [c["id"] for c in seen]
    # "now" is where the server's update sequence stands, which on a cluster is read from one
    # copy per shard and may not yet count a write made just before: such a change may come too
    # (at least once). Changes of different shards arrive in no set order.
    assert sorted(i for i in ids if i != "before") == sorted(new)
    assert ids.count("before") <= 1
    assert all(c["doc"]["_id"] == c["id"] for c in seen)


async def test_feed_since_zero_replays_history(db: tac.Database) -> None:
    await db.bulk_docs([{"_id": f"h{n}"} for n in range(4)])
    seen = await asyncio.wait_for(_collect(db.feed(since=0, heartbeat=1.0), 4), 10)
    assert sorted(c["id"] for c in seen) == [f"h{n}" for n in range(4)]


def _proxy_for(server: CouchServer) -> TCPProxy:
    parts = urlsplit(server.url)
    assert parts.hostname
    assert parts.port
    return TCPProxy(parts.hostname, parts.port)


@pytest.mark.embedded_only
@pytest.mark.parametrize("since", ["now", 0])
async def test_dropped_feed_resumes_and_sees_every_change_once(
    couch_server: CouchServer, db: tac.Database, since: str | int
) -> None:
    written: list[str] = []
    feed_live = asyncio.Event()

    def on_request(record: tac.RequestRecord) -> None:
        if "_changes" in record.url and record.status == 200:
            feed_live.set()

    async with _proxy_for(couch_server) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        async with tac.CouchDB(url, auth=couch_server.auth, on_request=on_request) as client:
            feed = client.database(db.name).feed(
                since=since, heartbeat=1.0, reconnect_delay=0.05, max_reconnect_delay=0.2
            )
            seen: list[str] = []

            async def consume() -> None:
                async for change in feed:
                    seen.append(change["id"])
                    if len(seen) >= 40 and set(seen) >= set(written):
                        return

            task = asyncio.ensure_future(consume())
            await asyncio.wait_for(feed_live.wait(), 5)
            proxy.drop_all()  # before any change: the feed must not lose what comes next
            for batch in range(8):
                for n in range(5):
                    doc_id = f"b{batch}/{n}"
                    await db.put_doc({"_id": doc_id})
                    written.append(doc_id)
                proxy.drop_all()
                await asyncio.sleep(0.02 * (batch % 3))
            await asyncio.wait_for(task, 20)
            await feed.aclose()
        assert proxy.connections_accepted >= 3
    assert seen == written  # each write is one change, in write order, none twice


@pytest.mark.embedded_only
async def test_feed_through_connections_cut_mid_answer(
    couch_server: CouchServer, db: tac.Database
) -> None:
    await db.bulk_docs([{"_id": f"p{n:02}", "pad": "x" * 50} for n in range(30)])
    async with _proxy_for(couch_server) as proxy:
        proxy.drop_after_bytes(900)  # a few change lines per connection, the last one cut
        url = f"http://127.0.0.1:{proxy.port}"
        async with tac.CouchDB(url, auth=couch_server.auth) as client:
            feed = client.database(db.name).feed(since=0, heartbeat=1.0, reconnect_delay=0.01)
            seen = await asyncio.wait_for(_collect(feed, 30), 20)
            await feed.aclose()
    ids = [c["id"] for c in seen]
    assert sorted(ids) == [f"p{n:02}" for n in range(30)]
    assert len(set(ids)) == 30


async def test_feed_error_status_ends_the_feed(db: tac.Database) -> None:
    with pytest.raises(tac.NotFound):
        await asyncio.wait_for(_collect(db.couch.database("no_such_db_x").feed(), 1), 5)


async def test_longpoll_waits_for_the_next_change(db: tac.Database) -> None:
    await db.put_doc({"_id": "before"})
    _, since = await db.changes()
    waiting = asyncio.create_task(db.changes(since=since, longpoll=True, heartbeat=0.5))
    await asyncio.sleep(1.2)  # longer than two heartbeats: the poll must still be waiting
    assert not waiting.done()
    await db.put_doc({"_id": "after"})
    results, last_seq = await asyncio.wait_for(waiting, 20)
    assert [change["id"] for change in results] == ["after"]
    assert last_seq != since
