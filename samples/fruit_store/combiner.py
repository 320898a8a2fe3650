"""Write combining for hot documents: one update in flight per document, carrying every change
that queued up meanwhile.

Fifty requests incrementing one counter would otherwise race: each reads the document, one
write wins, the other 49 meet a 409, read again, and so on, so that the database does about
n²/2 writes for n changes. Combined, they cost one read and one write per *batch*. Conflicts
still happen (other service instances, other routes writing the same document) and are
retried by the library's ``db.update``, with every change of the batch applied again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

M = TypeVar("M")
R = TypeVar("R")
Change = Callable[[M], M]
# Does the write: applies the combined change to the current document; returns what the
# callers of the batch get back (the saved document, say).
Writer = Callable[[str, Change[M]], Awaitable[R]]


def _retrieve(future: asyncio.Future[Any]) -> None:
    # A caller that gave up no longer awaits its future: mark its error seen, so that asyncio
    # does not log it as never retrieved.
    if not future.cancelled():
        future.exception()


class _Pending(Generic[M, R]):
    __slots__ = ("change", "done")

    def __init__(self, change: Change[M]) -> None:
        self.change = change
        self.done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self.done.add_done_callback(_retrieve)


class Combiner(Generic[M, R]):
    """Queues changes per document id and writes them in batches through ``writer``."""

    def __init__(self, writer: Writer[M, R], *, max_batch: int = 100) -> None:
        self._writer = writer
        self._max_batch = max_batch
        self._queues: dict[str, list[_Pending[M, R]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def apply(self, doc_id: str, change: Change[M]) -> R:
        """Apply ``change`` to document ``doc_id`` (with others queued for it); the document as
        saved with it. Raises what the writer raises for its batch."""
        pending: _Pending[M, R] = _Pending(change)
        queue = self._queues.get(doc_id)
        if queue is None:
            queue = self._queues[doc_id] = []
            task = asyncio.create_task(self._drain(doc_id, queue))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        queue.append(pending)
        # Shielded: a request that gives up (its deadline) must not cancel its batch-mates'
        # write; its own change may still be written (the outcome is unknown, as for any
        # write whose answer was not awaited).
        return await asyncio.shield(pending.done)

    async def _drain(self, doc_id: str, queue: list[_Pending[M, R]]) -> None:
        try:
            while queue:
                batch, queue[:] = queue[: self._max_batch], queue[self._max_batch :]
                await self._write(doc_id, batch)
        finally:
            del self._queues[doc_id]
            for pending in queue:  # only when cancelled: nothing will write them
                pending.done.cancel()

    async def _write(self, doc_id: str, batch: list[_Pending[M, R]]) -> None:
        def combined(current: M) -> M:
            for pending in batch:
                current = pending.change(current)
            return current

        try:
            saved = await self._writer(doc_id, combined)
        except asyncio.CancelledError:
            for pending in batch:
                pending.done.cancel()
            raise
        except Exception as error:  # every change of the batch failed with it
            for pending in batch:
                pending.done.set_exception(error)
        else:
            for pending in batch:
                pending.done.set_result(saved)
