"""Migration: every document of an older version of a type rewritten at the current version,
page by page, with a checkpoint after each page so that an interrupted run resumes."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._config import ConflictRetry
from .._couch import Database as RawDatabase
from .._exceptions import Conflict, NotFound
from .._models import Model, parse_type
from ._mapper import Mapper
from ._queries import closing, view_of
from ._retry import retry_conflicts

__all__ = ["MigrationProgress", "Progress", "migrate"]


@dataclass(frozen=True, slots=True)
class MigrationProgress:
    """Counts reported by :meth:`Database.migrate` after each page (cumulative over runs
    resumed from a checkpoint).

    ``seen``: documents of the type read; ``upgraded``: rewritten at the current version;
    ``newer``: left alone because a newer version of the application wrote them;
    ``last_key``: the id of the last document processed; ``done``: the final report.
    """

    seen: int = 0
    upgraded: int = 0
    newer: int = 0
    last_key: str | None = None
    done: bool = False


Progress = Callable[[MigrationProgress], object]


async def migrate(
    db: RawDatabase,
    mapper: Mapper,
    model: type[Model],
    *,
    page_size: int,
    progress: Progress | None,
    checkpoint_id: str | None,
) -> MigrationProgress:
    """What :meth:`Database.migrate` does (its docstring says how)."""
    info = model.couch_info()
    local_id = checkpoint_id or f"_local/migrate_{info.type_name}"
    checkpoint = await _read_checkpoint(db, local_id)
    state = MigrationProgress(
        seen=int(checkpoint.get("seen", 0)),
        upgraded=int(checkpoint.get("upgraded", 0)),
        newer=int(checkpoint.get("newer", 0)),
        last_key=checkpoint.get("last_key"),
    )
    pages = _pages(db, model, state.last_key, page_size)
    async with closing(pages):
        async for page in pages:
            state = await _migrate_page(db, mapper, model, page, state)
            checkpoint = await _write_checkpoint(db, local_id, checkpoint, state)
            await _report(progress, state)
    if "_rev" in checkpoint:
        await db.delete_doc(local_id, checkpoint["_rev"])
    state = MigrationProgress(state.seen, state.upgraded, state.newer, state.last_key, True)
    await _report(progress, state)
    return state


async def _pages(
    db: RawDatabase, model: type[Model], after: str | None, page_size: int
) -> AsyncIterator[list[dict[str, Any]]]:
    params: dict[str, Any] = {} if after is None else {"startkey": after}
    rows = db.view(*view_of(model), include_docs=True, page_size=page_size, **params)
    page: list[dict[str, Any]] = []
    async with closing(rows):
        async for row in rows:
            if row["id"] != after:
                page.append(row["doc"])
            if len(page) >= page_size:
                yield page
                page = []
    if page:
        yield page


async def _migrate_page(
    db: RawDatabase,
    mapper: Mapper,
    model: type[Model],
    page: list[dict[str, Any]],
    state: MigrationProgress,
) -> MigrationProgress:
    current = model.couch_info().version
    old, newer = [], 0
    for doc in page:
        version = _doc_version(doc)
        if version is not None and version > current:
            newer += 1
        elif version != current:
            old.append(mapper.model(model, doc))  # upgrade all of the page before writing
    upgraded = 0
    written = await mapper.documents(old)
    results = await db.bulk_docs([doc for doc, _ in written]) if written else []
    for result in results:
        if result.error is None:
            upgraded += 1
        elif isinstance(result.error, Conflict):
            upgraded += await _upgrade_one(db, mapper, model, result.id)
        else:
            raise result.error
    return MigrationProgress(
        seen=state.seen + len(page),
        upgraded=state.upgraded + upgraded,
        newer=state.newer + newer,
        last_key=page[-1]["_id"],
    )


async def _upgrade_one(db: RawDatabase, mapper: Mapper, model: type[Model], doc_id: str) -> int:
    """Upgrade one document changed since its page was read; 1 if this wrote it."""

    async def attempt(_: int) -> int:
        try:
            doc = await db.get_doc(doc_id)
        except NotFound:
            return 0
        if _doc_version(doc) == model.couch_info().version:
            return 0  # whoever changed it wrote the current version
        written, _saved = await mapper.document(mapper.model(model, doc))
        await db.put_doc(written)
        return 1

    return await retry_conflicts(ConflictRetry(), attempt)


async def _read_checkpoint(db: RawDatabase, local_id: str) -> dict[str, Any]:
    try:
        return await db.get_doc(local_id)
    except NotFound:
        return {"_id": local_id}


async def _write_checkpoint(
    db: RawDatabase, local_id: str, previous: dict[str, Any], state: MigrationProgress
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": local_id,
        "last_key": state.last_key,
        "seen": state.seen,
        "upgraded": state.upgraded,
        "newer": state.newer,
    }
    if "_rev" in previous:
        doc["_rev"] = previous["_rev"]
    answer = await db.put_doc(doc)
    return {**doc, "_rev": answer["rev"]}


def _doc_version(doc: Mapping[str, Any]) -> tuple[int, int] | None:
    parsed = parse_type(doc.get("type"))
    return None if parsed is None else parsed[1]


async def _report(progress: Progress | None, state: MigrationProgress) -> None:
    if progress is None:
        return
    outcome = progress(state)
    if inspect.isawaitable(outcome):
        await outcome
