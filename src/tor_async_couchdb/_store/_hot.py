"""Hot documents: concurrent updates of one document, in one process, coalesced into batches.

Two hundred tasks updating one counter each with its own read-change-write would conflict with
each other: one write wins per round and the others read again, about ``N**2 / 2`` requests
for ``N`` updaters. So :meth:`Database.update` does not write on its own: its change joins the
queue of the document (per client, keyed by database name and id), and one drain task per
queue takes the waiting changes in order, applies them one after the other to one read of the
document and writes the result once: one read and one write per batch, whatever its size.

A conflict (another process wrote the document) retries the whole batch under the conflict
policy, reading again and applying every change again: a change may run several times, as it
always could. A change that raises is dropped from the batch, and only its caller gets the
error. An error of the read or the write (:class:`NotFound`, a transport error, the retries
used up) is the error of every caller of the batch. The queue of a document is removed once
it is empty: memory is bounded by the documents being updated at the moment.

What the coalescing does not do: order or merge the updates of several processes. Those
still meet as conflicts and retry (``docs/models.md``, "Hot documents").
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from .._models import Model

__all__ = ["Batch", "HotDocuments"]

Runner = Callable[["Batch"], Awaitable[Model | None]]


@dataclass(eq=False, slots=True)
class _Waiter:
    """One caller of ``update``: its change, how it may be batched, where its answer goes."""

    change: Callable[[Any], Awaitable[Any]]
    group: Hashable  # only waiters of one group (mapper, model, policy) share a batch
    run: Runner
    future: asyncio.Future[Model]


@dataclass(eq=False, slots=True)
class Batch:
    """The waiters of one read and one write, in the order they called."""

    waiters: list[_Waiter]

    async def apply(self, current: Model, check: Callable[[Model], Model]) -> Model | None:
        """``current`` with the change of every waiter still waiting applied in order, each
        result checked by ``check`` (which returns the model to hand on); a change that raises
        (or whose result ``check`` refuses) fails its own caller and is left out of the batch
        from then on. None when no change is left."""
        applied = False
        for waiter in list(self.waiters):
            if waiter.future.done():  # its caller was cancelled
                self.waiters.remove(waiter)
                continue
            try:
                current = check(await waiter.change(current))
            except Exception as error:  # the caller's own error, not the batch's
                self.waiters.remove(waiter)
                if not waiter.future.done():  # (its caller may be cancelled meanwhile)
                    waiter.future.set_exception(error)
            else:
                applied = True
        return current if applied else None

    def resolve(self, saved: Model | None) -> None:
        for waiter in self.waiters:
            if not waiter.future.done() and saved is not None:
                waiter.future.set_result(saved)

    def cancel(self) -> None:
        for waiter in self.waiters:
            waiter.future.cancel()

    def fail(self, error: Exception) -> None:
        for waiter in self.waiters:
            if not waiter.future.done():
                waiter.future.set_exception(error)


@dataclass(eq=False, slots=True)
class _Queue:
    waiting: deque[_Waiter] = field(default_factory=deque)
    drain: asyncio.Task[None] | None = None


class HotDocuments:
    """The update queues of the documents being updated through one client."""

    __slots__ = ("_queues",)

    def __init__(self) -> None:
        self._queues: dict[tuple[str, str], _Queue] = {}

    def __len__(self) -> int:
        """How many documents have updates queued or under way."""
        return len(self._queues)

    async def update(
        self,
        key: tuple[str, str],
        group: Hashable,
        change: Callable[[Any], Awaitable[Any]],
        run: Runner,
    ) -> Model:
        """Queue ``change`` on document ``key`` and return the model saved by its batch, or
        raise its error. ``run(batch)`` reads, applies the batch, writes and retries."""
        future: asyncio.Future[Model] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
        queue.waiting.append(_Waiter(change, group, run, future))
        if queue.drain is None:
            queue.drain = asyncio.create_task(self._drain(key, queue))
        # A cancelled caller cancels its future: the drain skips it (or, if its batch is being
        # written already, the write goes on for the others).
        return await future

    async def _drain(self, key: tuple[str, str], queue: _Queue) -> None:
        try:
            while queue.waiting:
                batch = _next_batch(queue.waiting)
                if not batch.waiters:
                    continue
                try:
                    batch.resolve(await batch.waiters[0].run(batch))
                except Exception as error:
                    batch.fail(error)
                except asyncio.CancelledError:
                    batch.cancel()
                    raise
        finally:
            # No await between the last look at the queue and its removal: a caller arriving
            # now makes a new queue (and drain).
            for waiter in queue.waiting:
                waiter.future.cancel()  # only left by a cancelled drain
            if self._queues.get(key) is queue:
                del self._queues[key]


def _next_batch(waiting: deque[_Waiter]) -> Batch:
    """The waiters at the head of the queue that can share one write (same group)."""
    group = waiting[0].group
    taken = []
    while waiting and waiting[0].group == group:
        waiter = waiting.popleft()
        if not waiter.future.done():
            taken.append(waiter)
    return Batch(taken)
