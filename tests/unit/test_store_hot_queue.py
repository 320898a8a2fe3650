"""The update queues of hot documents, without a server: batching, groups, idle removal."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import tor_async_couchdb as tac
from tor_async_couchdb._store._hot import Batch, HotDocuments


class Tally(tac.Model, type_name="tally", version="1.0"):
    count: int = 0


async def _add(tally: Any) -> Any:
    return tally.model_copy(update={"count": tally.count + 1})


def _runner(stored: list[Tally], batches: list[int]) -> Any:
    async def run(batch: Batch) -> tac.Model | None:
        batches.append(len(batch.waiters))
        changed = await batch.apply(stored[-1], lambda model: model)
        if changed is None:
            return None
        stored.append(changed)  # type: ignore[arg-type]
        return changed

    return run


async def test_waiting_updates_share_one_run_and_the_queue_goes_when_idle() -> None:
    hot, stored, batches = HotDocuments(), [Tally()], list[int]()
    run = _runner(stored, batches)
    results = await asyncio.gather(*(hot.update(("db", "a"), "g", _add, run) for _ in range(20)))
    assert batches == [20]
    assert stored[-1].count == 20
    assert {result.model_dump()["count"] for result in results} == {20}
    assert len(hot) == 0


async def test_other_groups_and_documents_are_not_batched_together() -> None:
    hot, stored, batches = HotDocuments(), [Tally()], list[int]()
    run = _runner(stored, batches)
    calls = [hot.update(("db", "a"), "g1", _add, run) for _ in range(3)]
    calls += [hot.update(("db", "a"), "g2", _add, run) for _ in range(2)]
    calls += [hot.update(("db", "b"), "g1", _add, run)]
    await asyncio.gather(*calls)
    assert sorted(batches) == [1, 2, 3]
    assert len(hot) == 0


async def test_an_error_of_the_run_fails_every_caller_of_its_batch() -> None:
    hot = HotDocuments()

    async def run(batch: Batch) -> tac.Model | None:
        raise tac.NotFound("gone", status=404, error="not_found", reason="missing")

    results = await asyncio.gather(
        *(hot.update(("db", "a"), "g", _add, run) for _ in range(4)), return_exceptions=True
    )
    assert all(isinstance(result, tac.NotFound) for result in results)
    assert len(hot) == 0


async def test_a_caller_cancelled_while_waiting_is_skipped() -> None:
    hot, stored, batches = HotDocuments(), [Tally()], list[int]()
    run = _runner(stored, batches)
    tasks = [asyncio.create_task(hot.update(("db", "a"), "g", _add, run)) for _ in range(5)]
    await asyncio.sleep(0)  # every caller queued, the drain not yet run
    tasks[1].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[1], asyncio.CancelledError)
    assert stored[-1].count == 4
    with pytest.raises(asyncio.CancelledError):
        tasks[1].result()
