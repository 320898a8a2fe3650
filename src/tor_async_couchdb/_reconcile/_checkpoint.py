"""Where a reconciler remembers how far along the changes feed it got.

Behind one small interface (:class:`Checkpoint`) because the right place depends on the
deployment: a ``_local`` document (:class:`LocalDocCheckpoint`, not replicated, so each data
center keeps its own) is right for a single CouchDB node, but on a CouchDB cluster ``_local``
documents live on one shard copy and can vanish when shards move, and sequences differ per
node; a cluster-aware checkpoint can be swapped in without touching the reconciler. Losing a
checkpoint costs time, not correctness: the reconciler starts again from the beginning and
resolving an already-resolved document writes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .._exceptions import Conflict, NotFound

if TYPE_CHECKING:
    from .._couch import Database

__all__ = ["Checkpoint", "LocalDocCheckpoint", "MemoryCheckpoint"]


class Checkpoint(Protocol):
    """The last changes-feed sequence fully handled (an opaque string)."""

    async def load(self) -> str | None:
        """The saved sequence, or ``None`` to start from the beginning."""
        ...

    async def save(self, seq: str) -> None:
        """Remember ``seq``. Raises the database's errors."""
        ...


class MemoryCheckpoint:
    """A checkpoint in memory: for tests, and for reconcilers that may start from scratch."""

    def __init__(self, seq: str | None = None) -> None:
        self.seq = seq

    async def load(self) -> str | None:
        """The sequence saved last."""
        return self.seq

    async def save(self, seq: str) -> None:
        """Remember ``seq``."""
        self.seq = seq


class LocalDocCheckpoint:
    """A checkpoint in the ``_local/<name>`` document of the reconciled database."""

    def __init__(self, db: Database, name: str = "tor-async-couchdb-reconciler") -> None:
        self._db = db
        self.doc_id = f"_local/{name}"
        self._rev: str | None = None

    def __repr__(self) -> str:
        return f"LocalDocCheckpoint({self._db.name!r}, {self.doc_id!r})"

    async def load(self) -> str | None:
        """The saved sequence, or ``None`` if there is no checkpoint yet."""
        try:
            doc = await self._db.get_doc(self.doc_id)
        except NotFound:
            return None
        self._rev = doc.get("_rev")
        seq = doc.get("seq")
        return str(seq) if seq is not None else None

    async def save(self, seq: str) -> None:
        """Write ``seq``; on a conflict (another writer of the checkpoint), read and retry once."""
        try:
            await self._put(seq)
        except Conflict:
            await self.load()
            await self._put(seq)

    async def _put(self, seq: str) -> None:
        doc = {"_id": self.doc_id, "seq": seq}
        if self._rev is not None:
            doc["_rev"] = self._rev
        answer = await self._db.put_doc(doc)
        self._rev = str(answer["rev"])
