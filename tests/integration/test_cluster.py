"""What the library guarantees on a CouchDB cluster, against whatever server the suite runs on.

Against the embedded server (or a single node) these pass as they would on one node; with
``COUCHDB_URL`` naming a node of a cluster (``n`` > 1) they exercise the cluster's races: 202
Accepted writes, copies that lag, feeds that repeat. Reads that a cluster serves from one copy
(views, ``_all_docs``, ``_changes``) are polled with a bounded wait for what the cluster
guarantees eventually; the library's own guarantees (no lost update, nothing reported saved that
was not, each row once) are asserted strictly.
"""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import tor_async_couchdb as tac
from support.eventually import eventually
from support.tcpproxy import TCPProxy
from tor_async_couchdb.testing import CouchServer


class Tally(tac.Model, type_name="tally", version="1.0"):
    count: Annotated[int, tac.Indexed()] = 0


async def _is_cluster(db: tac.Database) -> bool:
    return await db.copies() > 1


def _increment(t: Tally) -> Tally:
    return t.model_copy(update={"count": t.count + 1})


RETRY = tac.ConflictRetry(attempts=400, backoff=0.005, max_backoff=0.2)


async def test_concurrent_updaters_of_one_counter_lose_nothing(
    couch_server: CouchServer, db: tac.Database
) -> None:
    # One client per updater: updates of one document through one client may be combined,
    # which would spare the cluster the very races this test is for.
    runs = 10 if await _is_cluster(db) else 2
    clients = [tac.CouchDB(couch_server.url, auth=couch_server.auth) for _ in range(50)]
    try:
        for run in range(runs):
            tally = await db.save(Tally())
            doc_id = tally.id or ""
            await asyncio.gather(
                *(
                    client.database(db.name).update(Tally, doc_id, _increment, retry=RETRY)
                    for client in clients
                )
            )
            final = await db.get(Tally, doc_id)
            assert final.count == 50, f"run {run}: {final.count} of 50"
            doc = await db.get_doc(doc_id, conflicts=True)
            assert "_conflicts" not in doc
    finally:
        for client in clients:
            await client.aclose()


async def _node_urls(couch: tac.CouchDB, server: CouchServer) -> list[str]:
    """The HTTP URLs of every node of the cluster ``server`` is a node of (itself alone for a
    single node or the embedded server): from ``/_membership`` and each node's configured
    port, on the host of ``server``."""
    engine = couch._engine
    try:
        membership = await engine.json("GET", "/_membership")
    except tac.HTTPStatusError:
        return [server.url]
    parts = urlsplit(server.url)
    urls = []
    for node in membership.get("cluster_nodes", []):
        try:
            port = await engine.json("GET", f"/_node/{node}/_config/chttpd/port")
        except tac.HTTPStatusError:  # a server without CouchDB 3's node config
            return [server.url]
        urls.append(f"{parts.scheme}://{parts.hostname}:{port}")
    return urls or [server.url]


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    import tor_async_couchdb as tac

    class Tally(tac.Model, type_name="tally", version="1.0"):
        count: int = 0

    async def main(url, user, password, db_name, doc_id, n):
        retry = tac.ConflictRetry(attempts=400, backoff=0.005, max_backoff=0.2)
        async with tac.CouchDB(url, auth=(user, password)) as couch:
            db = couch.database(db_name)
            def inc(t):
                return t.model_copy(update={"count": t.count + 1})
            await asyncio.gather(*(db.update(Tally, doc_id, inc, retry=retry) for _ in range(n)))

    asyncio.run(main(*sys.argv[1:6], int(sys.argv[6])))
    """
)


async def test_updaters_in_several_processes_through_every_node_lose_nothing(
    couch: tac.CouchDB, couch_server: CouchServer, db: tac.Database, tmp_path: Path
) -> None:
    urls = await _node_urls(couch, couch_server)
    tally = await db.save(Tally())
    script = tmp_path / "writer.py"
    script.write_text(_WRITER, encoding="utf-8")
    per_process = 17
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            url,
            couch_server.user,
            couch_server.password,
            db.name,
            tally.id or "",
            str(per_process),
            env={**os.environ, "PYTHONHASHSEED": str(index)},
        )
        for index, url in enumerate(urls[i % len(urls)] for i in range(3))
    ]
    try:
        codes = [await asyncio.wait_for(p.wait(), 300) for p in processes]
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert codes == [0, 0, 0]
    final = await db.get(Tally, tally.id or "")
    assert final.count == 3 * per_process


async def test_save_many_reports_exactly_what_was_committed(db: tac.Database) -> None:
    many = 10_000 if await _is_cluster(db) else 2_000
    results = await db.save_many([Tally(count=n) for n in range(many)], chunk_size=1000)
    saved = {r.model.id for r in results if r.ok}
    failed = [r for r in results if not r.ok]
    assert len(saved) + len(failed) == many

    async def all_visible() -> bool:
        rows = [row async for row in db.all_docs(keys=sorted(str(i) for i in saved))]
        return all("value" in row and not row["value"].get("deleted") for row in rows)

    await eventually(all_visible, within=60)
    stored = {row["id"] async for row in db.all_docs()}
    assert stored == saved  # nothing saved that is not reported, nothing reported not saved


async def test_paging_a_fresh_database_returns_every_row_once(db: tac.Database) -> None:
    await db.install_views(Tally)
    written = await db.save_many([Tally(count=n % 7) for n in range(300)])
    ids = sorted(str(r.unwrap().id) for r in written)

    async def documents(page_size: int) -> list[str]:
        rows = db.all_docs(page_size=page_size)
        return [row["id"] async for row in rows if not row["id"].startswith("_design/")]

    async def complete() -> bool:
        return await documents(1000) == ids

    await eventually(complete)
    for page_size in (1, 7, 50):
        assert await documents(page_size) == ids, f"_all_docs page_size={page_size}"
        models = [m.id async for m in db.query_range(Tally, "count", page_size=page_size)]
        assert sorted(str(m) for m in models) == ids, f"view page_size={page_size}"
        found = [d["_id"] async for d in db.find({"count": {"$gte": 0}}, page_size=page_size)]
        assert sorted(found) == ids, f"_find page_size={page_size}"


def _proxy_for(server: CouchServer) -> TCPProxy:
    parts = urlsplit(server.url)
    assert parts.hostname
    assert parts.port
    return TCPProxy(parts.hostname, parts.port)


async def test_a_feed_across_forced_reconnects_yields_every_change_once(
    couch_server: CouchServer, db: tac.Database
) -> None:
    written: list[str] = []
    async with _proxy_for(couch_server) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        async with tac.CouchDB(url, auth=couch_server.auth) as client:
            feed = client.database(db.name).feed(
                since=0, heartbeat=1.0, reconnect_delay=0.05, max_reconnect_delay=0.2
            )
            seen: list[tuple[str, str]] = []

            async def consume() -> None:
                async for change in feed:
                    seen.append((change["id"], change["changes"][0]["rev"]))
                    if {doc_id for doc_id, _ in seen} >= set(written) and len(written) == 30:
                        return

            task = asyncio.ensure_future(consume())
            for batch in range(6):
                for n in range(5):
                    doc_id = f"r{batch}/{n}"
                    await db.put_doc({"_id": doc_id})
                    written.append(doc_id)
                proxy.drop_all()
                await asyncio.sleep(0.05)
            await asyncio.wait_for(task, 60)
            await feed.aclose()
    assert {doc_id for doc_id, _ in seen} == set(written)  # at least once
    assert len(seen) == len(set(seen))  # and no change twice within the run
