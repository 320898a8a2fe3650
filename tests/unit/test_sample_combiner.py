"""The fruit store's write combiner, with a fake writer (pure logic)."""

from __future__ import annotations

import asyncio

import pytest
from samples.fruit_store.combiner import Change, Combiner


class Store:
    """A fake document store: one int per id, each write slow enough for others to queue."""

    def __init__(self, *, fail: bool = False) -> None:
        self.values: dict[str, int] = {}
        self.writes = 0
        self.fail = fail

    async def write(self, doc_id: str, change: Change[int]) -> int:
        await asyncio.sleep(0.01)
        self.writes += 1
        if self.fail:
            raise RuntimeError("write failed")
        self.values[doc_id] = change(self.values.get(doc_id, 0))
        return self.values[doc_id]


def plus(n: int) -> Change[int]:
    return lambda value: value + n


async def test_queued_changes_are_written_together() -> None:
    store = Store()
    combiner: Combiner[int, int] = Combiner(store.write)
    first = asyncio.create_task(combiner.apply("a", plus(1)))
    await asyncio.sleep(0.005)  # its write is under way
    results = await asyncio.gather(*(combiner.apply("a", plus(1)) for _ in range(49)))
    assert (await first, set(results)) == (1, {50})
    assert store.values == {"a": 50}
    assert store.writes == 2  # the first alone, then the 49 that queued behind it


async def test_documents_are_written_apart() -> None:
    store = Store()
    combiner: Combiner[int, int] = Combiner(store.write, max_batch=10)
    await asyncio.gather(*(combiner.apply(doc, plus(1)) for doc in "ab" * 15))
    assert store.values == {"a": 15, "b": 15}
    assert store.writes == 4  # per id: 10, then 5


async def test_a_failed_write_fails_its_whole_batch() -> None:
    combiner: Combiner[int, int] = Combiner(Store(fail=True).write)
    outcomes = await asyncio.gather(
        *(combiner.apply("a", plus(1)) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes)


async def test_a_caller_giving_up_does_not_cancel_the_batch() -> None:
    store = Store()
    combiner: Combiner[int, int] = Combiner(store.write)
    first = asyncio.create_task(combiner.apply("a", plus(1)))
    await asyncio.sleep(0)
    impatient = asyncio.create_task(combiner.apply("a", plus(10)))
    patient = asyncio.create_task(combiner.apply("a", plus(100)))
    await asyncio.sleep(0)
    impatient.cancel()
    assert await first == 1
    assert await patient == 111  # the impatient change was still written
    with pytest.raises(asyncio.CancelledError):
        await impatient
