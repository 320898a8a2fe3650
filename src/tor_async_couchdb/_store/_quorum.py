"""Writes confirmed on a CouchDB cluster: nothing is reported saved that did not survive.

A cluster keeps every document on ``n`` copies and answers a write once a quorum of them took
it: ``201 Created``. ``202 Accepted`` means fewer did (a copy was down, or already held a
concurrent write on the same parent). Copies then replicate among themselves, and two writes on
the same parent become two leaves of the document, of which CouchDB shows one (the winner,
picked by revision id): the other is silently hidden, a lost update. And since a revision id is
a hash of the parent and the body, two writers of the same body on the same parent (two
increments of 5 to 6) make the *same* revision: both "succeed", one increment is gone, and no
conflict is left to see.

So on a cluster the store:

1. stamps every document it writes with a unique, time-ordered write stamp
   (:data:`WRITE_STAMP`, a :func:`new_id`): two writers never write the same body;
2. confirms every write the cluster only *accepted* (202). A write the quorum took (201) is
   final: two writes on one parent cannot both reach a quorum of the copies (two quorums of
   ``n`` copies always share one), so any sibling of a 201 write was itself only accepted. An
   accepted write is confirmed by reading the document's leaves from all ``n`` copies
   (``open_revs=all``, ``r=n``): it holds when its revision is the only live leaf, or an
   ancestor of one. With live siblings it must give way to any that may be final: it withdraws
   its leaf (a deletion of that leaf) at once if a sibling has an older stamp, else after
   waiting ``window`` seconds for the younger siblings to withdraw (a younger sibling still
   there then is a committed write, or one whose writer died), and raises
   :class:`WriteNotConfirmed` (a :class:`Conflict`: ``update`` applies the change again on the
   current document). Of accepted siblings, the oldest is the one left;
3. reads a document for an update with its conflicts, and settles leftover siblings (left by
   writers that died between their write and its confirmation) before applying a change:
   after ``stale`` seconds, every live leaf but CouchDB's winner is removed.

What remains (``docs/clusters.md``): a writer that dies between an accepted write and its
confirmation leaves a leaf that CouchDB may pick as the winner over a concurrent committed
write; the update that settles it keeps the winner. Merge policies (multi-master) are the
remedy where that matters.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._couch import Database as RawDatabase
from .._exceptions import Conflict, InvalidInputError, NotFound, WriteNotConfirmed
from .._ids import id_timestamp
from .._models import WRITE_STAMP

__all__ = [
    "STALE_WINDOW",
    "WRITE_STAMP",
    "YIELD_WINDOW",
    "Leaf",
    "confirm_write",
    "settle_siblings",
]

# How long an accepted write waits for younger siblings to withdraw before it gives way.
YIELD_WINDOW = 1.0
# How long a sibling is left to its writer before an update removes it: longer than a writer
# takes to confirm or withdraw (a read and a write) plus its YIELD_WINDOW.
STALE_WINDOW = 3.0


@dataclass(frozen=True, slots=True)
class Leaf:
    """One leaf revision of a document: its rev, whether it is a deletion, its write stamp
    (``""`` for a document written by another client: it counts as the oldest) and the revs
    it descends from."""

    rev: str
    deleted: bool
    stamp: str
    ancestors: frozenset[str]


async def leaves(db: RawDatabase, doc_id: str, copies: int) -> list[Leaf]:
    """The leaves of ``doc_id`` as all ``copies`` see them."""
    found = []
    for item in await db.get_open_revs(doc_id, "all", history=True, r=copies):
        doc = item.get("ok") if isinstance(item, dict) else None
        if not isinstance(doc, dict):
            continue
        found.append(_leaf(doc))
    return found


def _leaf(doc: dict[str, Any]) -> Leaf:
    revisions = doc.get("_revisions") or {}
    start = int(revisions.get("start", 0))
    ancestors = frozenset(
        f"{start - depth}-{rev_hash}" for depth, rev_hash in enumerate(revisions.get("ids", ()))
    )
    stamp = doc.get(WRITE_STAMP)
    return Leaf(
        rev=str(doc["_rev"]),
        deleted=doc.get("_deleted") is True,
        stamp=stamp if isinstance(stamp, str) else "",
        ancestors=ancestors,
    )


async def confirm_write(
    db: RawDatabase,
    doc_id: str,
    rev: str,
    *,
    copies: int,
    withdraw: Callable[[str], dict[str, Any]],
    window: float = YIELD_WINDOW,
) -> None:
    """Return once the accepted write of ``doc_id`` at ``rev`` holds (see the module
    docstring); raise :class:`WriteNotConfirmed` once it gave way. ``withdraw(rev)`` makes the
    deletion stub of a leaf. Read errors are raised as they come: the write's fate is then
    unknown, and it is not retried."""
    deadline = time.monotonic() + window
    pause = 0.01
    while True:
        found = await leaves(db, doc_id, copies)
        mine = next((leaf for leaf in found if leaf.rev == rev), None)
        late = time.monotonic() >= deadline
        if mine is None:
            if any(rev in leaf.ancestors for leaf in found):
                return  # a later write was made on top of this one: it holds
            if late:
                raise _not_confirmed(doc_id, rev, "no copy holds it")
        else:
            rivals = [leaf for leaf in found if leaf is not mine and not leaf.deleted]
            if not rivals:
                return
            if mine.deleted:
                # A deletion with a live sibling did not delete the document.
                raise _not_confirmed(doc_id, rev, "a concurrent write keeps the document")
            if late or any(rival.stamp <= mine.stamp for rival in rivals):
                if not await _withdrawn(db, withdraw(rev)):
                    return  # a later write was made on top of it meanwhile: it holds
                raise _not_confirmed(doc_id, rev, "a concurrent write holds the document")
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.2)


async def current_settled(
    db: RawDatabase, doc_id: str, *, copies: int, withdraw: Callable[[str], dict[str, Any]]
) -> dict[str, Any]:
    """The current document ``doc_id``, read for an update: with its conflicts, and, if it
    has live siblings, once they are settled (:func:`settle_siblings`)."""
    doc = await db.get_doc(doc_id, conflicts=True)
    if doc.get("_conflicts"):
        await settle_siblings(db, doc_id, copies=copies, withdraw=withdraw)
        doc = await db.get_doc(doc_id)
    return doc


async def settle_siblings(
    db: RawDatabase,
    doc_id: str,
    *,
    copies: int,
    withdraw: Callable[[str], dict[str, Any]],
    stale: float = STALE_WINDOW,
) -> None:
    """Before an update of a document with live siblings: wait while a sibling's writer may
    still settle it (its stamp younger than ``stale`` seconds), then remove every live leaf but
    CouchDB's winner among them (read again each time: a winner seen before may have been
    withdrawn since, and removing all the others then would delete the document)."""
    pause = 0.05
    while True:
        live = [leaf for leaf in await leaves(db, doc_id, copies) if not leaf.deleted]
        if len(live) <= 1:
            return
        if all(_stale(leaf, stale) for leaf in live):
            winner = max(live, key=_winning_order)
            for leaf in live:
                if leaf is not winner:
                    await _withdrawn(db, withdraw(leaf.rev))
            return
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.5)


def _winning_order(leaf: Leaf) -> tuple[int, str]:
    """CouchDB's order of live leaves: the highest generation wins, then the highest rev."""
    generation, _, rev_hash = leaf.rev.partition("-")
    return int(generation), rev_hash


def _stale(leaf: Leaf, window: float) -> bool:
    """Whether a leaf's writer had more than ``window`` seconds to confirm it."""
    try:
        written = id_timestamp(leaf.stamp).timestamp()
    except (InvalidInputError, ValueError, TypeError):
        return True
    return time.time() - written > window


async def _withdrawn(db: RawDatabase, stub: dict[str, Any]) -> bool:
    """Delete one leaf; False if it is no longer a leaf (a write was made on top of it)."""
    try:
        await db.put_doc(stub)
    except (Conflict, NotFound):
        return False
    return True


def _not_confirmed(doc_id: str, rev: str, why: str) -> WriteNotConfirmed:
    return WriteNotConfirmed(
        f"the write of {doc_id!r} at {rev} did not hold on the cluster ({why}); the cluster "
        "did not confirm it with its write quorum",
        status=202,
        error="write_not_confirmed",
        reason=why,
        doc_id=doc_id,
    )
