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
2. confirms every write before reporting it: it reads the document's leaves from all ``n``
   copies (``open_revs=all``, ``r=n``). The write is confirmed when its revision is the only
   live leaf, or an ancestor of one (a later write built on it). When it has live siblings, the
   writer with the *younger* stamp withdraws its leaf (a deletion of that leaf) and gets
   :class:`WriteNotConfirmed` (a :class:`Conflict`: ``update`` applies the change again on the
   current document); the writer with the older stamp waits for the younger ones to withdraw,
   and removes those still there after ``window`` seconds (their writers died before they
   confirmed, so nobody was told they were saved);
3. reads documents for an update with their conflicts, and settles leftover siblings by the same
   rule before applying a change.

What remains (``docs/clusters.md``): a writer that dies between its write and its confirmation,
with the *older* stamp, leaves a write that was never acknowledged but survives (it counts, as
if acknowledged); merge policies (multi-master) are the remedy where that matters.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from .._couch import Database as RawDatabase
from .._exceptions import Conflict, InvalidInputError, NotFound, WriteNotConfirmed
from .._ids import id_timestamp
from .._models import WRITE_STAMP

__all__ = ["WRITE_STAMP", "Leaf", "confirm_write", "settle_siblings"]

# How long a writer is given to confirm its write: a leaf younger than this may still be
# withdrawn by its writer; an older one was left by a writer that died.
DEFAULT_WINDOW = 5.0


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
    withdraw: dict[str, Any],
    window: float = DEFAULT_WINDOW,
) -> None:
    """Return once the write of ``doc_id`` at ``rev`` is confirmed (see the module docstring);
    raise :class:`WriteNotConfirmed` once it is withdrawn or found gone. ``withdraw`` is the
    deletion stub that withdraws it (``_rev`` is set here). Read errors are raised as they come:
    the write's fate is then unknown, and it is not retried."""
    deadline = time.monotonic() + window
    pause = 0.01
    while True:
        found = await leaves(db, doc_id, copies)
        mine = next((leaf for leaf in found if leaf.rev == rev), None)
        if mine is None:
            if any(rev in leaf.ancestors for leaf in found):
                return  # a later write was made on top of this one: it holds
            raise _not_confirmed(doc_id, rev, "no copy holds it any more")
        rivals = [leaf for leaf in found if leaf is not mine and not leaf.deleted]
        if not rivals:
            return
        if mine.deleted:
            # A deletion with a live sibling did not delete the document.
            raise _not_confirmed(doc_id, rev, "a concurrent write keeps the document alive")
        if any(rival.stamp <= mine.stamp for rival in rivals):
            if not await _withdrawn(db, {**withdraw, "_id": doc_id, "_rev": rev}):
                return  # a later write was made on top of it meanwhile: it holds
            raise _not_confirmed(doc_id, rev, "an older concurrent write holds the document")
        if time.monotonic() >= deadline:
            # The younger rivals' writers had their time to withdraw them: they died.
            for rival in rivals:
                await _withdrawn(db, {**withdraw, "_id": doc_id, "_rev": rival.rev})
            continue
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.5)


async def settle_siblings(
    db: RawDatabase,
    doc_id: str,
    *,
    copies: int,
    withdraw: dict[str, Any],
    window: float = DEFAULT_WINDOW,
) -> None:
    """Before an update of a document that has live siblings: wait (up to ``window``) for
    their writers to settle them, then remove every sibling but the oldest-stamped one."""
    deadline = time.monotonic() + window
    pause = 0.01
    while True:
        live = sorted(
            (leaf for leaf in await leaves(db, doc_id, copies) if not leaf.deleted),
            key=lambda leaf: (leaf.stamp, leaf.rev),
        )
        if len(live) <= 1:
            return
        if time.monotonic() >= deadline or all(_stale(leaf, window) for leaf in live[1:]):
            for leaf in live[1:]:
                await _withdrawn(db, {**withdraw, "_id": doc_id, "_rev": leaf.rev})
            return
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.5)


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
