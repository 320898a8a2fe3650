"""Hot documents: concurrent updates of one document coalesced in one process, and two
processes updating it at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable

import pytest

import tor_async_couchdb as tac
from tor_async_couchdb.testing import CouchServer


class Counter(tac.Model, type_name="hot_counter", version="1.0"):
    count: int = 0
    note: str = ""


def increment(counter: Counter) -> Counter:
    return counter.model_copy(update={"count": counter.count + 1})


async def test_200_concurrent_updates_cost_far_fewer_requests(db: tac.Database) -> None:
    saved = await db.save(Counter())
    doc_id = saved.id or ""
    before = db.couch.stats().requests
    results = await asyncio.gather(*(db.update(Counter, doc_id, increment) for _ in range(200)))
    used = db.couch.stats().requests - before
    assert (await db.get(Counter, doc_id)).count == 200
    assert used < 100, f"{used} requests for 200 updates"
    assert all(result.count <= 200 for result in results)
    assert max(result.count for result in results) == 200
    assert len(db._hot) == 0  # the queue of the document is gone once idle


async def test_a_change_that_raises_fails_only_its_caller(db: tac.Database) -> None:
    saved = await db.save(Counter())
    doc_id = saved.id or ""

    def broken(counter: Counter) -> Counter:
        raise RuntimeError("this change is broken")

    def wrong_type(counter: Counter) -> Counter:
        return counter.model_copy(update={"count": "many"})

    calls = [db.update(Counter, doc_id, increment) for _ in range(5)]
    calls.insert(2, db.update(Counter, doc_id, broken))
    calls.insert(4, db.update(Counter, doc_id, wrong_type))
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[2], RuntimeError)
    assert isinstance(results[4], tac.ModelValidationError)
    assert sum(isinstance(result, Counter) for result in results) == 5
    assert (await db.get(Counter, doc_id)).count == 5


async def test_async_changes_apply_in_order(db: tac.Database) -> None:
    saved = await db.save(Counter())
    doc_id = saved.id or ""

    def appending(letter: str) -> Callable[[Counter], Awaitable[Counter]]:
        async def change(counter: Counter) -> Counter:
            await asyncio.sleep(0)
            return counter.model_copy(update={"note": counter.note + letter})

        return change

    await asyncio.gather(*(db.update(Counter, doc_id, appending(c)) for c in "abcdef"))
    assert (await db.get(Counter, doc_id)).note == "abcdef"


async def test_missing_document_fails_every_caller(db: tac.Database) -> None:
    results = await asyncio.gather(
        *(db.update(Counter, "nobody", increment) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(result, tac.NotFound) for result in results)


async def test_a_cancelled_caller_leaves_the_others_alone(db: tac.Database) -> None:
    saved = await db.save(Counter())
    doc_id = saved.id or ""
    tasks = [asyncio.create_task(db.update(Counter, doc_id, increment)) for _ in range(10)]
    await asyncio.sleep(0)
    tasks[5].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    done = sum(isinstance(result, Counter) for result in results)
    assert done >= 9
    assert (await db.get(Counter, doc_id)).count in (9, 10)


_UPDATER = textwrap.dedent(
    """
    import asyncio, sys, time
    import tor_async_couchdb as tac

    class Counter(tac.Model, type_name="hot_counter", version="1.0"):
        count: int = 0
        note: str = ""

    def increment(counter):
        return counter.model_copy(update={"count": counter.count + 1})

    async def main(url, user, password, name, doc_id, start_at, rounds):
        retry = tac.ConflictRetry(attempts=200, backoff=0.005, max_backoff=0.1)
        async with tac.CouchDB(url, auth=(user, password)) as couch:
            db = couch.database(name)
            await db.copies()
            await asyncio.sleep(max(0.0, start_at - time.time()))  # both start at once
            for _ in range(rounds):
                await asyncio.gather(
                    *(db.update(Counter, doc_id, increment, retry=retry) for _ in range(10))
                )
            stats = couch.stats()
            print(stats.requests, stats.errors_by_status.get(409, 0))

    asyncio.run(main(*sys.argv[1:6], float(sys.argv[6]), int(sys.argv[7])))
    """
)


@pytest.mark.timeout(120)
async def test_two_processes_updating_one_document_end_with_the_exact_count(
    couch_server: CouchServer, db: tac.Database
) -> None:
    saved = await db.save(Counter())
    args = [couch_server.url, couch_server.user, couch_server.password, db.name, saved.id or ""]
    start_at = str(time.time() + 3.0)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _UPDATER, *args, start_at, "30", stdout=subprocess.PIPE
        )
        for _ in range(2)
    ]
    outputs = [await proc.communicate() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    assert (await db.get(Counter, saved.id or "")).count == 600  # 2 processes x 30 x 10
    requests = [int(out.decode().split()[-2]) for out, _ in outputs]
    assert sum(requests) < 600, requests  # fewer than one per update, conflicts included
