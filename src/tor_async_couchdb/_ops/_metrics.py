"""Figures of a database and its views, and compaction that waits for its end.

Sizes are CouchDB 3's ``sizes`` fields (``active``: live data, ``file``: bytes on disk,
``external``: uncompressed JSON); fragmentation is ``(file - active) / file``, the share of the
file that compaction would free. A figure the server does not report is ``None``, shown as
"not reported", never estimated: pouchdb-server gives only ``disk_size`` (taken as the file
size), no deleted-document count and no view sizes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .._couch import CouchDB as RawCouchDB
from .._exceptions import BadRequest, CouchError, MethodNotAllowed, NotFound
from .._store import Database

__all__ = [
    "CompactionProgress",
    "CompactionReport",
    "DatabaseMetrics",
    "Sizes",
    "ViewMetrics",
    "collect_metrics",
    "compact",
]

CompactionCallback = Callable[["CompactionProgress"], Awaitable[None] | None]


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class Sizes:
    """Bytes of live data (``active``), on disk (``file``) and as JSON (``external``)."""

    active: int | None = None
    file: int | None = None
    external: int | None = None

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> Sizes:
        """Read ``sizes`` of a database or view-index answer (``disk_size`` where only that
        is given, as by pouchdb-server and CouchDB 1.x)."""
        sizes = info.get("sizes")
        if isinstance(sizes, Mapping):
            return cls(
                _int(sizes.get("active")), _int(sizes.get("file")), _int(sizes.get("external"))
            )
        return cls(file=_int(info.get("disk_size")), active=_int(info.get("data_size")))

    @property
    def fragmentation(self) -> float | None:
        """The share of the file compaction would free, or ``None`` if not reported."""
        if self.active is None or not self.file:
            return None
        return max(0.0, (self.file - self.active) / self.file)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form, fragmentation included."""
        return {**asdict(self), "fragmentation": self.fragmentation}


@dataclass(frozen=True, slots=True)
class ViewMetrics:
    """The index of one design document (one view each, for model design documents)."""

    design_id: str
    sizes: Sizes
    compact_running: bool | None = None


@dataclass(frozen=True, slots=True)
class DatabaseMetrics:
    """One database's figures. ``conflicted`` is ``None`` when not counted (it reads every
    document)."""

    database: str
    doc_count: int | None
    doc_del_count: int | None
    sizes: Sizes
    update_seq: str
    conflicted: int | None
    compact_running: bool | None
    views: tuple[ViewMetrics, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form; ``None`` stands for "not reported"."""
        return {
            "database": self.database,
            "doc_count": self.doc_count,
            "doc_del_count": self.doc_del_count,
            "sizes": self.sizes.as_dict(),
            "update_seq": self.update_seq,
            "conflicted": self.conflicted,
            "compact_running": self.compact_running,
            "views": [{"design_id": v.design_id, "sizes": v.sizes.as_dict()} for v in self.views],
        }


async def collect_metrics(db: Database, *, count_conflicts: bool = True) -> DatabaseMetrics:
    """The database's counts, sizes, update sequence and (with ``count_conflicts``, reading
    every document once, page by page) the number of documents with conflicts. Raises what
    the API raises (:class:`NotFound` for a missing database)."""
    info = await db.info()
    compact_running = info.get("compact_running")
    return DatabaseMetrics(
        database=db.name,
        doc_count=_int(info.get("doc_count")),
        doc_del_count=_int(info.get("doc_del_count")),
        sizes=Sizes.from_info(info),
        update_seq=str(info.get("update_seq")),  # opaque on CouchDB 3: shown, never parsed
        conflicted=await count_conflicted(db) if count_conflicts else None,
        compact_running=compact_running if isinstance(compact_running, bool) else None,
        views=tuple([await _view_metrics(db, ddoc) async for ddoc in design_ids(db)]),
    )


async def design_ids(db: Database) -> AsyncIterator[str]:
    """The ids of the database's design documents (``_all_docs`` on the ``_design/`` range:
    pouchdb-server has no ``_design_docs``)."""
    async for row in db.all_docs(startkey="_design/", endkey="_design0"):
        yield row["id"]


async def count_conflicted(db: Database) -> int:
    """How many documents hold conflicting revisions."""
    count = 0
    async for row in db.all_docs(include_docs=True, conflicts=True, page_size=1000):
        if (row.get("doc") or {}).get("_conflicts"):
            count += 1
    return count


async def _view_metrics(db: Database, design_id: str) -> ViewMetrics:
    try:
        info = await db.design_info(design_id.removeprefix("_design/"))
    except (NotFound, BadRequest):
        return ViewMetrics(design_id, Sizes())
    index = info.get("view_index")
    if not isinstance(index, Mapping):  # pouchdb-server: "Not implemented."
        return ViewMetrics(design_id, Sizes())
    running = index.get("compact_running")
    return ViewMetrics(
        design_id, Sizes.from_info(index), running if isinstance(running, bool) else None
    )


@dataclass(frozen=True, slots=True)
class CompactionProgress:
    """Compaction under way: ``percent`` from ``_active_tasks`` where reported, else ``None``."""

    what: str
    percent: int | None
    elapsed: float


@dataclass(frozen=True, slots=True)
class CompactionReport:
    """What :func:`compact` did: ``compacted`` False with ``skipped`` saying why, or the sizes
    before and after, and the design documents whose views were compacted."""

    database: str
    compacted: bool
    before: Sizes
    after: Sizes
    views: tuple[str, ...] = ()
    skipped: str | None = None
    notes: tuple[str, ...] = ()
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "database": self.database,
            "compacted": self.compacted,
            "skipped": self.skipped,
            "before": self.before.as_dict(),
            "after": self.after.as_dict(),
            "views": list(self.views),
            "notes": list(self.notes),
            "seconds": round(self.seconds, 3),
        }


async def compact(
    db: Database,
    *,
    threshold: float | None = None,
    time_limit: float = 3600.0,
    poll_interval: float = 1.0,
    progress: CompactionCallback | None = None,
) -> CompactionReport:
    """Compact the database and the views of each design document, and wait until the server
    is done. With ``threshold`` (0 to 1), only when the database's fragmentation is above it;
    a server that reports no fragmentation is then not compacted (the report says so).

    Raises :class:`TimeoutError` (builtin) after ``time_limit`` seconds, and what the API raises.
    """
    started = time.monotonic()
    before = Sizes.from_info(await db.info())
    reason = _skip_reason(before, threshold)
    if reason is not None:
        return CompactionReport(db.name, False, before, before, skipped=reason)
    async with asyncio.timeout(time_limit):
        await db.compact()
        await _wait_database(db, started, poll_interval, progress)
        views, notes = await _compact_views(db, started, poll_interval, progress)
    after = Sizes.from_info(await db.info())
    seconds = time.monotonic() - started
    return CompactionReport(db.name, True, before, after, views, None, notes, seconds)


def _skip_reason(before: Sizes, threshold: float | None) -> str | None:
    if threshold is None:
        return None
    fragmentation = before.fragmentation
    if fragmentation is None:
        return "the server reports no fragmentation to compare with the threshold"
    if fragmentation <= threshold:
        return f"fragmentation {fragmentation:.0%} is not above the threshold {threshold:.0%}"
    return None


async def _wait_database(
    db: Database, started: float, poll_interval: float, progress: CompactionCallback | None
) -> None:
    # CouchDB compacts in the background and says so in compact_running; pouchdb-server
    # compacts before it answers and has no such field.
    while (await db.info()).get("compact_running") is True:
        percent = await _task_percent(db.couch, "database_compaction", db.name)
        await _report(progress, CompactionProgress(db.name, percent, time.monotonic() - started))
        await asyncio.sleep(poll_interval)
    await _report(progress, CompactionProgress(db.name, 100, time.monotonic() - started))


async def _compact_views(
    db: Database, started: float, poll_interval: float, progress: CompactionCallback | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    compacted, notes = [], []
    async for design_id in design_ids(db):
        name = design_id.removeprefix("_design/")
        try:
            await db.compact(name)
        except (BadRequest, MethodNotAllowed, NotFound) as error:
            # pouchdb-server answers 400 to view compaction: say so, do not fail the rest.
            notes.append(f"{design_id}: view compaction refused by the server ({error.reason})")
            continue
        while (await _view_metrics(db, design_id)).compact_running is True:
            percent = await _task_percent(db.couch, "view_compaction", name)
            elapsed = time.monotonic() - started
            await _report(progress, CompactionProgress(design_id, percent, elapsed))
            await asyncio.sleep(poll_interval)
        compacted.append(design_id)
    return tuple(compacted), tuple(notes)


async def _task_percent(couch: RawCouchDB, kind: str, name: str) -> int | None:
    try:
        tasks = await couch.active_tasks()
    except CouchError:
        return None  # progress is a nicety; compact_running decides
    for task in tasks:
        # On a cluster the task names a shard ("shards/00000000-7fffffff/db.1712...").
        where = str(task.get("database", "")) + str(task.get("design_document", ""))
        if task.get("type") == kind and name in where:
            return _int(task.get("progress"))
    return None


async def _report(progress: CompactionCallback | None, step: CompactionProgress) -> None:
    if progress is None:
        return
    result = progress(step)
    if result is not None:
        await result
