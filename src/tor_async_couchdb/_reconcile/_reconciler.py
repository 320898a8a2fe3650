"""The reconciler: a long-running task that resolves every conflicted document it sees.

It follows the database's ``_changes`` feed with ``style=all_docs`` (each change lists every
leaf revision of its document) from a :class:`~._checkpoint.Checkpoint`; a document with more
than one leaf is fetched and resolved (:func:`~._resolve.resolve_document`). One runs in every
data center: resolutions are deterministic, so two reconcilers that resolve the same
conflict write the same revisions and replication has nothing new to reconcile.

Failure handling, by kind:

- a bad leaf (:class:`~.._merge.BadLeafError`): logged, counted by kind, the document left as
  it is (never guessed); the loop goes on;
- a closed client: ends the reconciler (its owner closed it);
- a database or network error: counted, retried for the same document after a capped,
  jittered exponential backoff (the feed resumes from the last change it handled);
- any other exception (a bug, say in a model's own ``merge``): logged with its traceback,
  counted as ``failed``, the document left as it is;
- cancellation: the checkpoint is saved (best effort, bounded in time) and the cancellation
  goes on; :meth:`Reconciler.stop` instead ends :meth:`Reconciler.run` after the document in
  hand, and ``run`` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

from .._exceptions import ClientClosedError, CouchError, InvalidInputError
from .._merge import BadLeafError, LeafHooks
from ._checkpoint import Checkpoint, MemoryCheckpoint
from ._protected import protection_hooks
from ._resolve import Resolved, resolve_many

if TYPE_CHECKING:
    from .._couch import Database
    from .._models import Model, ModelSet
    from .._store import Codec

__all__ = ["Backoff", "Reconciler", "ReconcilerMetrics"]

logger = logging.getLogger("tor_async_couchdb.reconcile")

# How many documents to remember the resolver tombstones of, so that the changes a resolution
# causes (here or, identical, in another data center), and documents whose only other leaves
# are tombstones, are not fetched again: about 100 bytes per tombstone.
_DEAD_CAPACITY: Final = 10_000
_SAVE_TIMEOUT: Final = 5.0


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with full jitter, for retrying after database errors."""

    initial: float = 0.5
    maximum: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise InvalidInputError(f"need 0 < initial <= maximum, got {self}")

    def delay(self, failures: int) -> float:
        """The delay before the retry after ``failures`` failures in a row (``>= 1``)."""
        # Full jitter: reconcilers of several data centers that failed together (a partition)
        # should not come back in step.
        return random.uniform(0, min(self.maximum, self.initial * 2 ** (failures - 1)))


@dataclass(slots=True)
class ReconcilerMetrics:
    """Counters of one reconciler (a snapshot, from :attr:`Reconciler.metrics`).

    ``changes`` read from the feed; ``inspected`` documents with several leaves fetched;
    ``conflicts`` of them found needing a merge (or unmergeable); ``resolved`` merges written;
    ``raced`` merges that found another writer first; ``quarantined`` documents with a leaf
    that failed its signature check; ``unresolvable`` other bad leaves, by kind; ``failed``
    documents given up on after an unexpected error; ``errors`` database errors retried;
    ``last_seq`` the last sequence handled, ``checkpointed`` the last one saved.
    """

    changes: int = 0
    inspected: int = 0
    conflicts: int = 0
    resolved: int = 0
    raced: int = 0
    quarantined: int = 0
    unresolvable: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    errors: int = 0
    last_seq: str | None = None
    checkpointed: str | None = None


class Reconciler:
    """Follows ``db``'s changes and resolves conflicts of the documents of ``models``.

    ``checkpoint`` defaults to one in memory (pass a
    :class:`~._checkpoint.LocalDocCheckpoint` to resume after a restart); it is saved every
    ``checkpoint_every`` changes and when the reconciler stops. ``codecs`` are the store's
    codecs of a protected database (a :class:`~.._protect.Protection`): every leaf is then
    verified and decoded by them (a leaf that fails is quarantined) and every write signed,
    tombstones included (see :mod:`._protected`); ``hooks`` plug in other data protection
    instead (signature check, decryption, signing of what is written). Changes are taken
    in batches: a change and those arriving within ``settle`` seconds of it (up to
    ``batch_size``); the leaves of a batch's conflicted documents are read in one ``_bulk_get``
    (``concurrency`` bounds those read one by one instead) and the resolutions written in a few
    ``_bulk_docs`` requests (:func:`~._resolve.resolve_many`). ``defer`` (seconds) holds each
    batch back before resolving it: give it to the reconcilers of all data centers but one,
    and they mostly find that one's resolutions already replicated (less work, fewer rounds
    of merges of different subsets of leaves), at the price of resolving later while it is
    down.
    """

    def __init__(
        self,
        db: Database,
        models: ModelSet | type[Model],
        *,
        checkpoint: Checkpoint | None = None,
        codecs: Iterable[Codec] = (),
        hooks: LeafHooks | None = None,
        backoff: Backoff = Backoff(),
        checkpoint_every: int = 100,
        heartbeat: float = 10.0,
        settle: float = 0.5,
        batch_size: int = 500,
        concurrency: int = 4,
        defer: float = 0.0,
    ) -> None:
        """Raises :class:`InvalidInputError` for a count below 1, a negative ``settle``, an
        object in ``codecs`` that is no codec, or both ``codecs`` and ``hooks``."""
        if min(checkpoint_every, batch_size, concurrency) < 1 or min(settle, defer) < 0:
            raise InvalidInputError("counts must be at least 1, settle and defer not negative")
        codecs = tuple(codecs)
        if codecs and hooks is not None:
            raise InvalidInputError("pass codecs or hooks, not both")
        if codecs:
            hooks = protection_hooks(codecs, models)
        self._db = db
        self._models = models
        self._checkpoint: Checkpoint = checkpoint or MemoryCheckpoint()
        self._hooks = hooks
        self._backoff = backoff
        self._every = checkpoint_every
        self._heartbeat = heartbeat
        self._settle = settle
        self._batch_size = batch_size
        self._concurrency = concurrency
        self._defer = defer
        self._saved_at = 0  # the change count at the last checkpoint
        self._metrics = ReconcilerMetrics()
        self._dead: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._stopping = asyncio.Event()
        self._busy = False
        self._follower: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<Reconciler of {self._db.name!r} at {self._metrics.last_seq!r}>"

    @property
    def metrics(self) -> ReconcilerMetrics:
        """A snapshot of the counters."""
        return replace(self._metrics, unresolvable=dict(self._metrics.unresolvable))

    async def lag(self, *, limit: int = 1000) -> int:
        """How many changes the feed holds after the last one handled (counted up to
        ``limit``). Raises the database's errors."""
        results, _ = await self._db.changes(since=self._metrics.last_seq or 0, limit=limit)
        return len(results)

    def stop(self) -> None:
        """End :meth:`run` after the batch in hand (at once if it is waiting for changes; a
        ``run`` not started yet returns as soon as it starts); safe to call from a signal
        handler on the loop."""
        self._stopping.set()
        if not self._busy and self._follower is not None:
            self._follower.cancel()

    async def run(self) -> None:
        """Follow the feed until :meth:`stop` (then return) or cancellation (then raise it).

        Database errors and bad documents never end it (see the module docstring).
        """
        self._follower = asyncio.create_task(self._follow())
        try:
            await self._follower
        except asyncio.CancelledError:
            if not self._stopping.is_set() or not self._follower.cancelled():
                raise  # cancelled from outside: save below, then go on being cancelled
        finally:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            try:
                await self._save_checkpoint_at_exit()
            finally:
                self._stopping.clear()  # (so that it can run again)

    async def _follow(self) -> None:
        queue: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue(maxsize=2 * self._batch_size)
        reader = asyncio.create_task(self._read(queue))
        try:
            while not self._stopping.is_set():
                batch = await self._next_batch(queue, reader)
                if self._defer:
                    # Give the data center that resolves first the time to do it: its
                    # resolutions replicate here, and this one then finds them settled.
                    await asyncio.sleep(self._defer)
                self._busy = True
                try:
                    await self._handle_batch(batch)
                finally:
                    self._busy = False
                self._metrics.changes += len(batch)
                self._metrics.last_seq = str(batch[-1]["seq"])
                if self._metrics.changes - self._saved_at >= self._every:
                    await self._save_checkpoint()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read(self, queue: asyncio.Queue[Mapping[str, Any]]) -> None:
        """Put the feed's changes into ``queue``, reconnecting after errors (with backoff)."""
        failures = 0
        read_seq: str | int | None = None
        while True:
            since = read_seq or self._metrics.last_seq or await self._checkpoint.load() or 0
            try:
                async for change in self._db.feed(
                    since=since, style="all_docs", heartbeat=self._heartbeat
                ):
                    failures = 0
                    read_seq = str(change["seq"])
                    await queue.put(change)
            except ClientClosedError:
                raise  # the client is gone: no retry can help
            except CouchError as error:
                failures += 1
                self._metrics.errors += 1
                delay = self._backoff.delay(failures)
                logger.warning("reconciler feed failed (%s); again in %.1f s", error, delay)
                await asyncio.sleep(delay)

    async def _next_batch(
        self, queue: asyncio.Queue[Mapping[str, Any]], reader: asyncio.Task[None]
    ) -> list[Mapping[str, Any]]:
        """The next change, and those that follow within ``settle`` seconds of it.

        Why wait: replication brings a conflict's leaves one by one; resolving at the first
        two would write a merge that the third then conflicts with, and data centers that saw
        different subsets would write different merges, each to be merged again.
        """
        getter = asyncio.ensure_future(queue.get())
        done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
        if getter not in done:
            getter.cancel()
            reader.result()  # the reader ended: raise what ended it
            raise asyncio.CancelledError  # (it was cancelled)
        batch = [getter.result()]
        deadline = asyncio.get_running_loop().time() + self._settle
        while len(batch) < self._batch_size:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _handle_batch(self, batch: list[Mapping[str, Any]]) -> None:
        wanted: dict[str, frozenset[str]] = {}
        for change in batch:  # the latest change of each document counts
            doc_id = str(change.get("id", ""))
            wanted[doc_id] = frozenset(str(c.get("rev")) for c in change.get("changes", ()))
        wanted = {
            doc_id: revs
            for doc_id, revs in wanted.items()
            # One leaf that is not a known tombstone (the usual case), or a design document.
            if len(revs - self._dead.get(doc_id, frozenset())) > 1
            and not doc_id.startswith("_design/")
        }
        if not wanted:
            return
        failures = 0
        while True:
            try:
                outcomes = await resolve_many(
                    self._db,
                    wanted,
                    self._models,
                    hooks=self._hooks,
                    concurrency=self._concurrency,
                )
            except ClientClosedError:
                raise
            except CouchError as error:
                # A request failed as a whole: every resolution is idempotent, so the batch
                # is simply done again (what was written is then found written).
                failures += 1
                self._metrics.errors += 1
                delay = self._backoff.delay(failures)
                logger.warning(
                    "resolving %d documents failed (%s); again in %.1f s", len(wanted), error, delay
                )
                await asyncio.sleep(delay)
            else:
                break
        for doc_id, outcome in outcomes.items():
            if isinstance(outcome, Resolved):
                self._count(outcome)
            elif isinstance(outcome, BadLeafError):
                self._count_bad(outcome)
            else:
                self._metrics.failed += 1
                logger.error(
                    "resolving %s failed unexpectedly; left as it is",
                    doc_id,
                    exc_info=outcome,
                )

    def _count(self, resolved: Resolved) -> None:
        self._metrics.inspected += 1
        if not resolved.resolution.settled:
            self._metrics.conflicts += 1
        if resolved.changed and not resolved.raced:
            self._metrics.resolved += 1
        if resolved.raced:
            self._metrics.raced += 1
        self._remember(resolved.doc_id, resolved.dead)

    def _count_bad(self, bad: BadLeafError) -> None:
        self._metrics.inspected += 1
        self._metrics.conflicts += 1
        if bad.kind == "tampered":
            self._metrics.quarantined += 1
        else:
            kinds = self._metrics.unresolvable
            kinds[bad.kind] = kinds.get(bad.kind, 0) + 1
        logger.error("left %s unresolved: %s", bad.doc_id, bad)

    def _remember(self, doc_id: str, dead: frozenset[str]) -> None:
        # (A tombstone stays dead: it is history whatever happens to the document later.)
        self._dead[doc_id] = self._dead.get(doc_id, frozenset()) | dead
        self._dead.move_to_end(doc_id)
        while len(self._dead) > _DEAD_CAPACITY:
            self._dead.popitem(last=False)

    async def _save_checkpoint(self) -> None:
        seq = self._metrics.last_seq
        if seq is None or seq == self._metrics.checkpointed:
            return
        try:
            await self._checkpoint.save(seq)
        except CouchError as error:
            # Not fatal: the next save (or a restart from an older one) covers it.
            logger.warning("reconciler checkpoint not saved (%s)", error)
            return
        self._metrics.checkpointed = seq
        self._saved_at = self._metrics.changes

    async def _save_checkpoint_at_exit(self) -> None:
        # Bounded: a reconciler being shut down must not hang on an unreachable database.
        try:
            async with asyncio.timeout(_SAVE_TIMEOUT):
                await self._save_checkpoint()
        except TimeoutError:
            logger.warning("reconciler checkpoint not saved at exit (timed out)")
