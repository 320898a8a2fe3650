"""Resolving conflicted documents over the raw document API, many per request.

Fetch every leaf (``_bulk_get`` of the leaf revisions a change lists, or ``open_revs=all``),
merge them (:func:`~.._merge.resolve_leaves`, pure), write the merged child of each winner,
and only once it is accepted, a tombstone of every other live leaf; the users' deleted leaves
are closed by replicated-style writes (``new_edits=false``, see :func:`~.._merge._leaves.closure`).

Why the child first, and not everything at once: CouchDB checks each revision of a
``_bulk_docs`` request on its own, so when the child is refused (another resolver, which saw
fewer leaves, already extended the winner) the tombstones would still be accepted, and a leaf
that only this resolver saw would be deleted with its changes merged nowhere. Written in this
order, a resolution cut short (a crash, a lost connection, a race) leaves leaves that the next
resolution merges into the same result: after the child, the winner already is the merge and
only tombstones remain to write.

Batched: the children of every document of a batch go in one ``_bulk_docs`` request, then the
first tombstone of each document in the next, and so on (the raw client matches answers by id,
so one id appears once per request). A document with three leaves thus costs a batch three
requests, not three per document.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._exceptions import Conflict
from .._merge import LeafHooks, Resolution, is_resolver_tombstone, resolve_leaves
from .._store._quorum import YIELD_WINDOW
from .._store._quorum import leaves as copy_leaves

if TYPE_CHECKING:
    from .._couch import Database
    from .._models import Model, ModelSet

__all__ = ["Resolved", "fetch_leaves", "fetch_many_leaves", "resolve_document", "resolve_many"]

logger = logging.getLogger("tor_async_couchdb.reconcile")


@dataclass(frozen=True, slots=True)
class Resolved:
    """What resolving one document did: its ``resolution``, the revisions ``written``, how
    many writes were ``raced`` (refused as conflicts: someone else changed the document), and
    the ``leaves`` it has now, as far as this resolver knows, and which of them are ``dead``:
    resolvers' tombstones (history: never merged again)."""

    doc_id: str
    resolution: Resolution
    written: tuple[str, ...]
    raced: int
    leaves: frozenset[str]
    dead: frozenset[str] = frozenset()

    @property
    def changed(self) -> bool:
        """Whether anything was written."""
        return bool(self.written)


async def fetch_leaves(db: Database, doc_id: str) -> list[dict[str, Any]]:
    """Every leaf revision of ``doc_id``, deleted ones included (``[]`` if it has none)."""
    answer = await db.get_open_revs(doc_id)
    return [item["ok"] for item in answer if isinstance(item.get("ok"), Mapping)]


async def fetch_many_leaves(
    db: Database, wanted: Mapping[str, Collection[str]], *, concurrency: int = 4
) -> dict[str, list[dict[str, Any]]]:
    """The leaves of the documents ``wanted`` (doc id -> the leaf revisions a ``style=all_docs``
    change listed), as they are now, in two requests however many documents: ``_all_docs``
    (``conflicts=true``) gives each winner and its live siblings' revisions, then one
    ``_bulk_get`` the siblings and the change's other revisions (deleted leaves; a live one
    no longer a leaf is dropped). A document of which a revision cannot be read so (compacted
    away since) is read with ``open_revs=all`` instead, at most ``concurrency`` at a time.
    Raises the database's errors.

    Why not the change's revisions alone: a change waits in the queue while earlier batches
    are resolved, and a leaf it lists may have been extended since (by another data center's
    resolution); merging from it would write on a revision that is no longer a leaf, and be
    refused.
    """
    found: dict[str, list[dict[str, Any]]] = {doc_id: [] for doc_id in wanted}
    live: dict[str, set[str]] = {}
    # (Read to the end: a batch's keys are bounded by its size.)
    rows = [r async for r in db.all_docs(keys=list(wanted), include_docs=True, conflicts=True)]
    for row in rows:
        doc, doc_id = row.get("doc"), str(row.get("key"))
        if isinstance(doc, Mapping) and doc_id in found:
            winner = {k: v for k, v in doc.items() if k != "_conflicts"}
            found[doc_id].append(winner)
            live[doc_id] = {str(winner["_rev"]), *map(str, doc.get("_conflicts", ()))}
    pairs = [
        (doc_id, rev)
        for doc_id, revs in wanted.items()
        for rev in sorted((live.get(doc_id, set()) | set(revs)) - {_rev(found[doc_id])})
    ]
    incomplete: set[str] = set()
    for item in await db.bulk_get(pairs) if pairs else []:
        doc_id = str(item.get("id"))
        for answer in item.get("docs", ()):
            body = answer.get("ok")
            if not isinstance(body, Mapping) or doc_id not in found:
                incomplete.add(doc_id)
            elif body.get("_deleted") or str(body.get("_rev")) in live.get(doc_id, ()):
                found[doc_id].append(dict(body))
    gate = asyncio.Semaphore(concurrency)

    async def refetch(doc_id: str) -> None:
        async with gate:
            found[doc_id] = await fetch_leaves(db, doc_id)

    await asyncio.gather(*(refetch(doc_id) for doc_id in sorted(incomplete)))
    return found


def _rev(leaves: list[dict[str, Any]]) -> str | None:
    return str(leaves[0]["_rev"]) if leaves else None


async def resolve_document(
    db: Database,
    doc_id: str,
    models: ModelSet | type[Model],
    *,
    hooks: LeafHooks | None = None,
) -> Resolved:
    """Merge and write the leaves of ``doc_id`` (all of them, read with ``open_revs=all``).

    Raises :class:`~.._merge.BadLeafError` (nothing written) and the database's errors other
    than a per-document conflict in the bulk answers.
    """
    leaves = await fetch_leaves(db, doc_id)
    if not leaves:
        empty = Resolution(doc_id, None, None, None, ())
        return Resolved(doc_id, empty, (), 0, frozenset())
    resolution = resolve_leaves(models, leaves, hooks=hooks)
    (resolved,) = await write_resolutions(db, [(resolution, leaves)])
    return resolved


async def resolve_many(
    db: Database,
    wanted: Mapping[str, Collection[str]],
    models: ModelSet | type[Model],
    *,
    hooks: LeafHooks | None = None,
    concurrency: int = 4,
) -> dict[str, Resolved | Exception]:
    """Resolve the documents ``wanted`` (doc id -> the leaf revisions a change listed): one
    outcome per document, a :class:`Resolved` or the exception that kept it unresolved (a
    :class:`~.._merge.BadLeafError`, or a bug in a model's own ``merge``: nothing written for
    it). Raises the database's errors for a request that fails as a whole."""
    fetched = await fetch_many_leaves(db, wanted, concurrency=concurrency)
    outcomes: dict[str, Resolved | Exception] = {}
    pending: list[tuple[Resolution, list[dict[str, Any]]]] = []
    for doc_id, leaves in fetched.items():
        if not leaves:
            outcomes[doc_id] = Resolved(
                doc_id, Resolution(doc_id, None, None, None, ()), (), 0, frozenset()
            )
            continue
        try:
            pending.append((resolve_leaves(models, leaves, hooks=hooks), leaves))
        except Exception as error:  # reported per document by the caller
            outcomes[doc_id] = error
    for resolved in await write_resolutions(db, pending):
        outcomes[resolved.doc_id] = resolved
    return outcomes


@dataclass(slots=True)
class _Progress:
    resolution: Resolution
    remaining: set[str]
    fetched: int
    dead: set[str]
    written: list[str] = field(default_factory=list)
    raced: int = 0
    halted: bool = False  # the merged child was refused: write nothing more

    def done(self) -> Resolved:
        doc_id = self.resolution.doc_id
        if self.written or self.raced:
            logger.info(
                "resolved %s: %d leaves, %d written, %d raced",
                doc_id,
                self.fetched,
                len(self.written),
                self.raced,
            )
        leaves, dead = frozenset(self.remaining), frozenset(self.dead)
        return Resolved(doc_id, self.resolution, tuple(self.written), self.raced, leaves, dead)


async def write_resolutions(
    db: Database, resolutions: Sequence[tuple[Resolution, Sequence[Mapping[str, Any]]]]
) -> list[Resolved]:
    """Write ``resolutions`` (each with the leaves it was computed from) in rounds: the merged
    children, then one tombstone of each document per request, then the closures of users'
    deletes. One :class:`Resolved` per resolution, in order. Raises the database's errors
    other than per-document conflicts."""
    progress = [
        _Progress(
            r,
            {str(leaf["_rev"]) for leaf in leaves},
            len(leaves),
            {str(leaf["_rev"]) for leaf in leaves if is_resolver_tombstone(leaf)},
        )
        for r, leaves in resolutions
    ]
    children = [(p, p.resolution.merged) for p in progress if p.resolution.merged is not None]
    await _write_round(db, [(p, doc) for p, doc in children if doc is not None], first=True)
    depth = max((len(p.resolution.tombstones) for p in progress), default=0)
    for index in range(depth):
        await _write_round(
            db,
            [
                (p, p.resolution.tombstones[index])
                for p in progress
                if not p.halted and index < len(p.resolution.tombstones)
            ],
        )
    depth = max((len(p.resolution.closures) for p in progress), default=0)
    for index in range(depth):
        await _write_round(
            db,
            [
                (p, p.resolution.closures[index])
                for p in progress
                if not p.halted and index < len(p.resolution.closures)
            ],
            replicated=True,
        )
    return [p.done() for p in progress]


async def _write_round(
    db: Database,
    writes: Sequence[tuple[_Progress, dict[str, Any]]],
    *,
    first: bool = False,
    replicated: bool = False,
) -> None:
    if not writes:
        return
    answers = await db.bulk_docs([doc for _, doc in writes], new_edits=not replicated)
    for (progress, doc), result in zip(writes, answers, strict=True):
        parent = _parent(doc) if replicated else str(doc["_rev"])
        if result.ok and (result.rev is not None or replicated):
            rev = str(result.rev or doc["_rev"])  # (a replicated write keeps its own rev)
            if first and result.accepted and not await _held(db, str(doc["_id"]), rev):
                progress.raced += 1
                progress.halted = True  # the merge may be lost: deleting leaves could lose them
                continue
            progress.written.append(rev)
            progress.remaining.discard(parent)
            progress.remaining.add(rev)
            if doc.get("_deleted"):
                progress.dead.add(rev)
        elif isinstance(result.error, Conflict):
            progress.raced += 1
            if first:
                progress.halted = True  # the merge did not land: deleting leaves could lose them
        elif result.error is not None:
            raise result.error


async def _held(db: Database, doc_id: str, rev: str, *, window: float = YIELD_WINDOW) -> bool:
    """Whether a merged child a cluster only accepted (202: fewer copies than its quorum took
    it) is held by its copies: read from all of them (``r=n``, as the store confirms its
    writes), it is a leaf or an ancestor of one within ``window`` seconds.

    Why only the child: the tombstones that follow delete the merged leaves, and if the
    child were then lost with the copy that took it, their changes would be merged nowhere.
    Siblings of the child are no reason to give way (unlike the store's writes): they are the
    leaves being merged, or another resolver's merge, merged again at the next change."""
    copies = await _copies(db)
    deadline = time.monotonic() + window
    pause = 0.01
    while True:
        found = await copy_leaves(db, doc_id, copies)
        if any(leaf.rev == rev or rev in leaf.ancestors for leaf in found):
            return True
        if time.monotonic() >= deadline:
            logger.warning("the merge of %s at %s did not hold on the cluster", doc_id, rev)
            return False
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.2)


async def _copies(db: Database) -> int:
    cluster = (await db.info()).get("cluster")
    n = cluster.get("n") if isinstance(cluster, Mapping) else None
    return n if isinstance(n, int) and n > 0 else 1


def _parent(closure: Mapping[str, Any]) -> str:
    history = closure["_revisions"]
    return f"{int(history['start']) - 1}-{history['ids'][1]}"
