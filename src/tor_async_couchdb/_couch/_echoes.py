"""Lost answers: a write repeated after its answer was lost may meet its own first attempt.

When a request was retried after it may already have been carried out (the connection broke
after it was written, a gateway lost the answer), a final 409 can be the echo of this very
write. These functions read the document back and turn such an echo into the success it was.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol

from .._exceptions import Conflict, NotFound
from .._json import dumps, loads
from ._bulk import BulkResult

__all__ = ["saved_echo", "settle_echoes"]


class Database(Protocol):
    """What these checks read through: a database handle's document reads."""

    async def get_doc(self, doc_id: str) -> dict[str, Any]: ...

    def all_docs(self, *, keys: Sequence[str] | None = None) -> AsyncIterator[dict[str, Any]]: ...


async def saved_echo(db: Database, doc_id: str, doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """``{"ok", "id", "rev"}`` if the current revision of ``doc_id`` is exactly ``doc``
    written on top of the revision it names (so an earlier attempt of it was saved)."""
    sent_rev = doc.get("_rev")
    generation = int(str(sent_rev).split("-", 1)[0]) if sent_rev else 0
    if doc.get("_deleted"):
        return await _deleted_echo(db, doc_id, generation)
    try:
        current = await db.get_doc(doc_id)
    except NotFound:
        return None
    rev = str(current.pop("_rev", ""))
    if not rev.startswith(f"{generation + 1}-"):
        return None
    expected = loads(dumps({k: v for k, v in doc.items() if k != "_rev"}), method="", url="")
    return {"ok": True, "id": doc_id, "rev": rev} if current == expected else None


async def _deleted_echo(db: Database, doc_id: str, generation: int) -> dict[str, Any] | None:
    # A deleted document answers 404 to GET; _all_docs still names its deleting revision.
    async for row in db.all_docs(keys=[doc_id]):
        value = row.get("value") or {}
        rev = str(value.get("rev", ""))
        if value.get("deleted") and rev.startswith(f"{generation + 1}-"):
            return {"ok": True, "id": doc_id, "rev": rev}
    return None


async def settle_echoes(
    db: Database, docs: Sequence[Mapping[str, Any]], results: list[BulkResult]
) -> list[BulkResult]:
    """After a retry of a lost answer, turn conflicts that are the echo of the first
    attempt's own writes into the successes they were."""
    settled = list(results)
    for index, (doc, result) in enumerate(zip(docs, results, strict=True)):
        if isinstance(result.error, Conflict):
            echo = await saved_echo(db, result.id, doc)
            if echo is not None:
                settled[index] = BulkResult(result.id, echo["rev"])
    return settled
