"""Migration: every document of an older version of a type rewritten at the current version,
page by page, with a checkpoint after each page so that an interrupted run resumes.

The checkpoint is an ordinary document (a :class:`Checkpoint` model), not a ``_local`` one: a
CouchDB cluster never copies ``_local`` documents between the copies of a shard, so a copy that
missed a checkpoint's write would never get it, and a later read could find no checkpoint and
start again. Ordinary documents are kept consistent by the cluster (and their writes confirmed
by the store, see :mod:`._quorum`)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from .._config import ConflictRetry
from .._couch import Database as RawDatabase
from .._exceptions import Conflict, NotFound
from .._models import Model, parse_type
from ._mapper import Mapper
from ._queries import closing, view_of
from ._results import SaveResult
from ._retry import retry_conflicts

__all__ = ["Checkpoint", "MigrationProgress", "Progress", "migrate", "pages_after"]

M = TypeVar("M", bound=Model)


class Checkpoint(Model, type_name="tac_checkpoint", version="1.0"):
    """Where a migration (or another long job) stopped: the last key done and its counts."""

    last_key: str | None = None
    seen: int = 0
    upgraded: int = 0
    newer: int = 0


class ModelWrites(Protocol):
    """The store's model writes a migration goes through (confirmed on a cluster)."""

    async def save(self, model: M) -> M: ...

    async def get(self, model: type[M], doc_id: str) -> M: ...

    async def delete(self, model: Model) -> None: ...

    async def save_many(
        self, models: Sequence[M], *, chunk_size: int = ...
    ) -> list[SaveResult[M]]: ...


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
    writes: ModelWrites,
    mapper: Mapper,
    model: type[Model],
    *,
    page_size: int,
    progress: Progress | None,
    checkpoint_id: str | None,
) -> MigrationProgress:
    """What :meth:`Database.migrate` does (its docstring says how)."""
    info = model.couch_info()
    checkpoint_id = checkpoint_id or f"tac_checkpoint_migrate_{info.type_name}"
    try:
        checkpoint = await writes.get(Checkpoint, checkpoint_id)
    except NotFound:
        checkpoint = Checkpoint(id=checkpoint_id)
    state = MigrationProgress(
        checkpoint.seen, checkpoint.upgraded, checkpoint.newer, checkpoint.last_key
    )
    pages = pages_after(db, model, state.last_key, page_size)
    async with closing(pages):
        async for page in pages:
            state = await _migrate_page(db, writes, mapper, model, page=page, state=state)
            checkpoint = await writes.save(
                checkpoint.model_copy(
                    update={
                        "last_key": state.last_key,
                        "seen": state.seen,
                        "upgraded": state.upgraded,
                        "newer": state.newer,
                    }
                )
            )
            await _report(progress, state)
    if checkpoint.rev is not None:
        await writes.delete(checkpoint)
    state = MigrationProgress(state.seen, state.upgraded, state.newer, state.last_key, True)
    await _report(progress, state)
    return state


async def pages_after(
    db: RawDatabase, model: type[Model], after: str | None, page_size: int
) -> AsyncIterator[list[dict[str, Any]]]:
    """The documents of ``model``'s ``_all`` view after id ``after``, ``page_size`` at a time
    (the pages a migration and a key rotation work through, resuming from a checkpoint)."""
    params: dict[str, Any] = {} if after is None else {"startkey": after}
    rows = db.view(*view_of(model), include_docs=True, page_size=page_size, **params)
    page: list[dict[str, Any]] = []
    async with closing(rows):
        async for row in rows:
            if row["id"] != after and row.get("doc") is not None:  # (None: deleted meanwhile)
                page.append(row["doc"])
            if len(page) >= page_size:
                yield page
                page = []
    if page:
        yield page


async def _migrate_page(
    db: RawDatabase,
    writes: ModelWrites,
    mapper: Mapper,
    model: type[Model],
    *,
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
    for result in await writes.save_many(old, chunk_size=max(1, len(old))) if old else []:
        if result.error is None:
            upgraded += 1
        elif isinstance(result.error, Conflict):
            upgraded += await _upgrade_one(db, writes, mapper, model, str(result.model.id))
        else:
            raise result.error
    return MigrationProgress(
        seen=state.seen + len(page),
        upgraded=state.upgraded + upgraded,
        newer=state.newer + newer,
        last_key=page[-1]["_id"],
    )


async def _upgrade_one(
    db: RawDatabase, writes: ModelWrites, mapper: Mapper, model: type[Model], doc_id: str
) -> int:
    """Upgrade one document changed since its page was read; 1 if this wrote it."""

    async def attempt(_: int) -> int:
        try:
            doc = await db.get_doc(doc_id)
        except NotFound:
            return 0
        if _doc_version(doc) == model.couch_info().version:
            return 0  # whoever changed it wrote the current version
        await writes.save(mapper.model(model, doc))
        return 1

    return await retry_conflicts(ConflictRetry(), attempt)


def _doc_version(doc: Mapping[str, Any]) -> tuple[int, int] | None:
    parsed = parse_type(doc.get("type"))
    return None if parsed is None else parsed[1]


async def _report(progress: Progress | None, state: MigrationProgress) -> None:
    if progress is None:
        return
    outcome = progress(state)
    if inspect.isawaitable(outcome):
        await outcome
