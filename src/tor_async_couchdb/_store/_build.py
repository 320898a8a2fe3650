"""Building view indexes before they are needed: ``install_views(..., build=True)``.

CouchDB builds a view's index when the view is first queried after its design document was
written, inside that query. Querying every new view once (one row) when the views are
installed moves that cost out of users' requests.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .._config import ConflictRetry
from .._couch import Database as RawDatabase
from .._exceptions import NotFound, TransportTimeout
from ._queries import closing
from ._retry import retry_conflicts

__all__ = ["BuildProgress", "ViewProgress", "build_views", "put_design_doc"]


@dataclass(frozen=True, slots=True)
class BuildProgress:
    """Where a build of the installed views stands: ``built`` of ``total`` views, the last
    one ``design``/``view``."""

    design: str
    view: str
    built: int
    total: int


ViewProgress = Callable[[BuildProgress], object]


async def put_design_doc(db: RawDatabase, doc: dict[str, Any]) -> bool:
    """Put design document ``doc`` unless the one stored holds it already; True if written.
    A conflict means another installer got there first: compare with what it wrote."""

    async def attempt(_: int) -> bool:
        try:
            current: dict[str, Any] | None = await db.get_doc(doc["_id"])
        except NotFound:
            current = None
        if current is not None and all(current.get(k) == v for k, v in doc.items()):
            return False
        await db.put_doc(dict(doc) if current is None else {**doc, "_rev": current["_rev"]})
        return True

    return await retry_conflicts(ConflictRetry.immediate(3), attempt, note=False)


async def build_views(
    db: RawDatabase, docs: Sequence[dict[str, Any]], progress: ViewProgress | None
) -> None:
    """Query every view of the design documents ``docs`` once, waiting for its index, and call
    ``progress`` (a function or coroutine function) after each view."""
    views = [(str(doc["_id"]), name) for doc in docs for name in doc.get("views") or {}]
    for built, (design, view) in enumerate(views, start=1):
        await _build_one(db, design, view)
        if progress is not None:
            outcome = progress(BuildProgress(design, view, built, len(views)))
            if inspect.isawaitable(outcome):
                await outcome


async def _build_one(db: RawDatabase, design: str, view: str) -> None:
    while True:
        try:
            rows = db.view(design, view, limit=1, page_size=1)
            async with closing(rows):
                async for _ in rows:
                    break
            return
        except TransportTimeout:
            # A build longer than the read timeout goes on on the server: ask again while its
            # indexer runs (a server that stopped answering altogether raises).
            if not await _indexing(db, design):
                raise


async def _indexing(db: RawDatabase, design: str) -> bool:
    info = (await db.design_info(design)).get("view_index")
    return isinstance(info, dict) and info.get("updater_running") is True
