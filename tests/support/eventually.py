"""A bounded wait for what a CouchDB cluster promises only eventually.

A cluster serves views, ``_all_docs`` and ``_changes`` from one copy of each shard, which may lag
a write for a moment: tests that read right after writing wait for the condition with a bound,
and then assert the library's own guarantees strictly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import tor_async_couchdb as tac

__all__ = ["collections_show", "eventually", "views_caught_up"]


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


async def collections_show(
    db: tac.Database,
    model: type[tac.Model],
    revs: Mapping[str, str],
    *,
    indexes: Sequence[str] = (),
) -> None:
    """Wait until the reads behind the store's collections, ``model``'s ``_all`` view (and
    the views of ``indexes``) and ``_all_docs``, show each document of ``revs`` (id to rev)
    at that rev: after a direct edit, so that a test asserts what the store makes of the
    edited document, not of a copy of a shard that has not seen the edit yet."""
    info = model.couch_info()
    views = [tac.view_location(model, None)]
    views += [tac.view_location(model, info.index(name)) for name in indexes]

    async def in_view(design: str, view: str) -> dict[str, str | None]:
        rows = db.view(design, view, include_docs=True)
        return {row["id"]: (row.get("doc") or {}).get("_rev") async for row in rows}

    async def shown() -> bool:
        listed = db.all_docs(keys=list(revs), include_docs=True)
        seen = [{row["key"]: (row.get("doc") or {}).get("_rev") async for row in listed}]
        seen += [await in_view(design, view) for design, view in views]
        return all(found.get(i) == rev for found in seen for i, rev in revs.items())

    await eventually(shown)
