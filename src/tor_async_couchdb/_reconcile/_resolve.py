"""Resolving one conflicted document over the raw document API.

Fetch every leaf (``open_revs=all``), merge them (:func:`~.._merge.resolve_leaves`, pure),
write the merged child of the winner, and only once it is accepted, a tombstone of every
other leaf.

Why the child first, and not everything in one ``_bulk_docs`` request: CouchDB checks each
revision of such a request on its own, so when the child is refused (another resolver, which
saw fewer leaves, already extended the winner) the tombstones would still be accepted, and a
leaf that only this resolver saw would be deleted with its changes merged nowhere. Written in
this order, a resolution cut short (a crash, a lost connection, a race) leaves leaves that the
next resolution merges into the same result: after the child, the winner already is the merge
and only tombstones remain to write. (The tombstones go one per request because the raw
client's ``bulk_docs`` matches answers by id and so refuses an id twice in one request.)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._exceptions import Conflict
from .._merge import LeafHooks, Resolution, resolve_leaves

if TYPE_CHECKING:
    from .._couch import Database
    from .._models import Model, ModelSet

__all__ = ["Resolved", "fetch_leaves", "resolve_document"]

logger = logging.getLogger("tor_async_couchdb.reconcile")


@dataclass(frozen=True, slots=True)
class Resolved:
    """What resolving one document did: its ``resolution``, the revisions ``written``, how
    many writes were ``raced`` (refused as conflicts: someone else changed the document), and
    the ``leaves`` it has now, as far as this resolver knows."""

    doc_id: str
    resolution: Resolution
    written: tuple[str, ...]
    raced: int
    leaves: frozenset[str]

    @property
    def changed(self) -> bool:
        """Whether anything was written."""
        return bool(self.written)


async def fetch_leaves(db: Database, doc_id: str) -> list[dict[str, Any]]:
    """Every leaf revision of ``doc_id``, deleted ones included (``[]`` if it has none)."""
    answer = await db.get_open_revs(doc_id)
    return [item["ok"] for item in answer if isinstance(item.get("ok"), Mapping)]


async def resolve_document(
    db: Database,
    doc_id: str,
    models: ModelSet | type[Model],
    *,
    hooks: LeafHooks | None = None,
) -> Resolved:
    """Merge and write the leaves of ``doc_id``.

    Raises :class:`~.._merge.BadLeafError` (nothing written) and the database's errors other
    than a per-document conflict in the bulk answer.
    """
    leaves = await fetch_leaves(db, doc_id)
    if not leaves:
        empty = Resolution(doc_id, None, None, None, ())
        return Resolved(doc_id, empty, (), 0, frozenset())
    resolution = resolve_leaves(models, leaves, hooks=hooks)
    remaining = {str(leaf["_rev"]) for leaf in leaves}
    writes = resolution.writes
    if not writes:
        return Resolved(doc_id, resolution, (), 0, frozenset(remaining))
    written: list[str] = []
    raced = 0
    for doc in writes:
        (result,) = await db.bulk_docs([doc])
        if result.ok and result.rev is not None:
            written.append(result.rev)
            remaining.discard(str(doc["_rev"]))
            remaining.add(result.rev)
        elif isinstance(result.error, Conflict):
            raced += 1
            if doc is resolution.merged:
                break  # the merge did not land: deleting the other leaves could lose them
        elif result.error is not None:
            raise result.error
    logger.info(
        "resolved %s: %d leaves, %d written, %d raced", doc_id, len(leaves), len(written), raced
    )
    return Resolved(doc_id, resolution, tuple(written), raced, frozenset(remaining))
