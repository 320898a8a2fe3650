"""Migration of stored documents to the current model version, and paging of large views.

The two large tests are marked ``slow``; their sizes come from ``TAC_MIGRATE_DOCS`` and
``TAC_VIEW_DOCS``.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Annotated, Any

import psutil
import pytest

import tor_async_couchdb as tac
from support.eventually import eventually


class Fruit(tac.Model, type_name="fruit", version="2.0"):
    fruit_id: Annotated[str, tac.Indexed()]
    color: str

    @tac.upgrade("1.0", to="1.1")
    @staticmethod
    def _colour_to_color(doc: dict[str, Any]) -> dict[str, Any]:
        doc["color"] = doc.pop("colour")
        return doc

    @tac.upgrade("1.1", to="2.0")
    @staticmethod
    def _name_to_fruit_id(doc: dict[str, Any]) -> dict[str, Any]:
        doc["fruit_id"] = doc.pop("name")
        return doc


class Interrupted(Exception):
    pass


def old_doc(n: int) -> dict[str, Any]:
    return {"_id": tac.new_id(), "type": "fruit_v1.0", "name": f"f{n}", "colour": "red"}


async def write_raw(db: tac.Database, docs: list[dict[str, Any]], chunk: int = 1000) -> None:
    # A few requests in flight keep the server busy without flooding it.
    limit = asyncio.Semaphore(4)

    async def one(part: list[dict[str, Any]]) -> None:
        async with limit:
            results = await db.bulk_docs(part)
        assert all(r.ok for r in results)

    await asyncio.gather(*(one(docs[i : i + chunk]) for i in range(0, len(docs), chunk)))


async def test_migrate_resumes_after_an_interruption(db: tac.Database) -> None:
    await db.install_views(Fruit)
    docs = [old_doc(n) for n in range(1200)]
    current = [
        {"_id": tac.new_id(), "type": "fruit_v2.0", "fruit_id": f"new{n}", "color": "blue"}
        for n in range(100)
    ]
    future: dict[str, Any] = {"_id": tac.new_id(), "type": "fruit_v3.0", "whatever": 1}
    await write_raw(db, [*docs, *current, future])
    await db.put_doc({"_id": "basket", "type": "basket_v1.0"})
    seen: list[tac.MigrationProgress] = []

    def stop_after_first_page(progress: tac.MigrationProgress) -> None:
        seen.append(progress)
        raise Interrupted

    with pytest.raises(Interrupted):
        await db.migrate(Fruit, page_size=500, progress=stop_after_first_page)
    checkpoint = await db.get_doc("tac_checkpoint_migrate_fruit")
    assert checkpoint["last_key"] == docs[499]["_id"]
    assert checkpoint["upgraded"] == 500
    assert seen == [tac.MigrationProgress(seen=500, upgraded=500, last_key=docs[499]["_id"])]

    # The next page's documents were read with the first; change one of them meanwhile, so
    # the bulk write of its page conflicts and the document is read and upgraded again.
    changed = await db.get_doc(docs[500]["_id"])
    await db.put_doc({**changed, "colour": "green"})

    async def record(progress: tac.MigrationProgress) -> None:
        seen.append(progress)

    final = await db.migrate(Fruit, page_size=500, progress=record)
    assert final == tac.MigrationProgress(
        seen=1301, upgraded=1200, newer=1, last_key=future["_id"], done=True
    )
    assert [p.seen for p in seen] == [500, 1000, 1301, 1301]
    with pytest.raises(tac.NotFound):
        await db.get_doc("tac_checkpoint_migrate_fruit")

    stored = {row["id"]: row["doc"] async for row in db.all_docs(include_docs=True)}
    for n, doc in enumerate(docs):
        now = stored[doc["_id"]]
        assert now["type"] == "fruit_v2.0"
        assert now["fruit_id"] == f"f{n}"
        # Written once by the migration (twice for the one changed in between): no page twice.
        assert now["_rev"].startswith("3-" if n == 500 else "2-")
    assert stored[docs[500]["_id"]]["color"] == "green"
    assert all(stored[doc["_id"]]["_rev"].startswith("1-") for doc in current)
    assert stored[future["_id"]]["_rev"].startswith("1-")
    assert stored["basket"]["type"] == "basket_v1.0"

    again = await db.migrate(Fruit, page_size=500)  # nothing left to do
    assert (again.seen, again.upgraded) == (1301, 0)


async def test_migrate_stops_on_a_document_that_does_not_upgrade(db: tac.Database) -> None:
    await db.install_views(Fruit)
    good, bad = old_doc(1), {"_id": tac.new_id(), "type": "fruit_v1.0", "colour": "red"}
    await write_raw(db, [good, bad])
    with pytest.raises(tac.ModelValidationError):
        await db.migrate(Fruit, page_size=10)
    # The page holding the bad document is not written at all.
    assert (await db.get_doc(good["_id"]))["type"] == "fruit_v1.0"


def _size(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@pytest.mark.slow
async def test_migrate_many_documents_resumes_after_an_interruption(db: tac.Database) -> None:
    count = _size("TAC_MIGRATE_DOCS", 10_000)
    await db.install_views(Fruit)
    await write_raw(db, [old_doc(n) for n in range(count)])

    async def all_in_the_view() -> bool:  # (at once on one node; a cluster's copies may lag)
        design, view = tac.view_location(Fruit)
        rows = db.view(design, view, limit=count, page_size=count)
        return len([row async for row in rows]) == count

    await eventually(all_in_the_view, within=120)
    began = time.perf_counter()

    def stop_a_third_of_the_way(progress: tac.MigrationProgress) -> None:
        if progress.seen >= count // 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        await db.migrate(Fruit, page_size=500, progress=stop_a_third_of_the_way)
    report = await db.migrate(Fruit, page_size=500)
    elapsed = time.perf_counter() - began
    assert (report.seen, report.upgraded, report.done) == (count, count, True)
    rows = [row async for row in db.all_docs()]
    revs = [row["value"]["rev"] for row in rows if not row["id"].startswith("_design/")]
    # Every document written exactly once by the two runs together: none lost, none twice.
    assert len(revs) == count
    assert all(rev.startswith("2-") for rev in revs)
    upgraded = [f async for f in db.query(Fruit, fruit_id="f0")]
    assert [f.color for f in upgraded] == ["red"]
    print(f"migrated {count} documents, interrupted once, in {elapsed:.1f} s")


@pytest.mark.slow
async def test_iterating_a_large_view_stays_in_bounded_memory(db: tac.Database) -> None:
    count = _size("TAC_VIEW_DOCS", 100_000)
    await db.install_views(Fruit)
    # Written a chunk at a time, so the baseline below is not inflated by freed test data.
    ids: list[str] = []
    for start in range(0, count, 4000):
        chunk = [
            {"_id": tac.new_id(), "type": "fruit_v2.0", "fruit_id": f"f{n}", "color": "red"}
            for n in range(start, min(count, start + 4000))
        ]
        await write_raw(db, chunk)
        ids[:] = [ids[0] if ids else chunk[0]["_id"], chunk[-1]["_id"]]
    first_id, last_id = ids
    process = psutil.Process()
    baseline = peak = process.memory_info().rss
    seen, previous = 0, ""
    began = time.perf_counter()
    async for fruit in db.all(Fruit, page_size=1000):
        assert (fruit.id or "") > previous
        previous = fruit.id or ""
        seen += 1
        if seen % 1000 == 0:
            peak = max(peak, process.memory_info().rss)
    elapsed = time.perf_counter() - began
    assert seen == count
    assert previous == last_id
    assert first_id < last_id
    growth = (peak - baseline) / 2**20
    assert growth < 50, f"peak RSS grew {growth:.1f} MB"
    print(f"read {count} models in {elapsed:.1f} s, peak RSS growth {growth:.1f} MB")
