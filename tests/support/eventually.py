"""A bounded wait for what a CouchDB cluster promises only eventually.

A cluster serves views, ``_all_docs`` and ``_changes`` from one copy of each shard, which may lag
a write for a moment: tests that read right after writing wait for the condition with a bound,
and then assert the library's own guarantees strictly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import tor_async_couchdb as tac

__all__ = ["eventually", "views_caught_up"]


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 30.0) -> None:
    """Return once ``check()`` is true; raise AssertionError if it is not within ``within``
    seconds (polling every 0.2 s)."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within} s")
        await asyncio.sleep(0.2)


async def views_caught_up(
    db: tac.Database, model: type[tac.Model], saved: Sequence[tac.Model]
) -> None:
    """Wait until every view of ``model`` (its ``_all`` view and each index) shows every model
    of ``saved`` at its saved revision (at once on one node; a cluster's copies may lag)."""
    wanted = {m.id: m.rev for m in saved}
    for index in [None, *model.couch_info().indexes]:
        design, view = tac.view_location(model, index)

        async def shows_all(design: str = design, view: str = view) -> bool:
            rows = db.view(design, view, include_docs=True)
            found = {row["id"]: (row.get("doc") or {}).get("_rev") async for row in rows}
            return all(found.get(doc_id) == rev for doc_id, rev in wanted.items())

        await eventually(shows_all)
