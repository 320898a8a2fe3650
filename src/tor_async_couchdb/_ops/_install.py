"""Install and upgrade a database: create it, apply ``_security``, put design and seed documents.

The 2015 library skipped a design document that already existed, so a changed view never
reached production. Here a changed design document is upgraded without blocking queries:

1. it is put under a temporary id (``_design/<name>--tac-upgrade-<token>``), which makes the
   server build its index while the old design document keeps answering from the old index;
2. each of its views is queried once, which waits for the index and finds a map function the
   server refuses (CouchDB 3 rejects it at step 1 or here; pouchdb-server accepts anything);
3. it is copied (``COPY``) onto the real id: CouchDB (and PouchDB) key an index by the views'
   code, not by the design document's id, so the real id finds the index already built;
4. the temporary document is deleted and ``_view_cleanup`` drops the old index.

Every changed design document is staged and warmed before the first is swapped, so a failure
leaves every old view answering. New design documents take the same path, so their first
query does not wait for a whole index either.

Two installers may run at once: each stages under its own token, and a 409 or 412 caused by
the other (the database exists, the swap or a seed was done first) is compared with what was
wanted and taken as success when it matches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .._couch import CouchDB as RawCouchDB
from .._exceptions import (
    BadRequest,
    Conflict,
    CouchError,
    MethodNotAllowed,
    NotFound,
    ReadTimeout,
)
from .._store import CouchDB, Database
from ._sources import InstallSpec, Security, design_matches

__all__ = [
    "Action",
    "InstallProgress",
    "InstallReport",
    "Plan",
    "PlanItem",
    "install",
    "plan_install",
]

logger = logging.getLogger("tor_async_couchdb.ops")

Action = Literal["created", "updated", "unchanged"]
Kind = Literal["database", "security", "design", "seed"]
Phase = Literal["staged", "indexing", "checked", "swapped"]
ProgressCallback = Callable[["InstallProgress"], Awaitable[None] | None]

_UPGRADE_MARK = "--tac-upgrade-"
_SWAP_ATTEMPTS = 3
_CLEANUP_GRACE = 2.0  # seconds between the swaps and _view_cleanup


@dataclass(frozen=True, slots=True)
class PlanItem:
    """One thing an install creates, updates or finds unchanged."""

    kind: Kind
    id: str
    action: Action


@dataclass(frozen=True, slots=True)
class Plan:
    """What an install does (or, after :func:`install`, did), item by item."""

    database: str
    items: tuple[PlanItem, ...]

    @property
    def changes(self) -> tuple[PlanItem, ...]:
        """The items created or updated."""
        return tuple(item for item in self.items if item.action != "unchanged")

    def counts(self) -> dict[str, int]:
        """How many items are created, updated and unchanged."""
        counts = {"created": 0, "updated": 0, "unchanged": 0}
        for item in self.items:
            counts[item.action] += 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "database": self.database,
            "counts": self.counts(),
            "items": [asdict(item) for item in self.items],
        }


@dataclass(frozen=True, slots=True)
class InstallProgress:
    """A step of a design document's upgrade, for progress bars.

    ``changes_done``/``total_changes`` come from ``_active_tasks`` where the server reports
    indexing there (CouchDB); both are ``None`` otherwise (pouchdb-server), and the wait is
    for the view's first answer.
    """

    design_id: str
    phase: Phase
    elapsed: float
    changes_done: int | None = None
    total_changes: int | None = None


@dataclass(frozen=True, slots=True)
class WarmUp:
    """How one design document's index was built before its swap."""

    design_id: str
    seconds: float
    progress_from: Literal["active_tasks", "view"]


@dataclass(frozen=True, slots=True)
class InstallReport:
    """The result of :func:`install`: the plan carried out and the warm-ups it took."""

    plan: Plan
    warm_ups: tuple[WarmUp, ...]
    view_cleanup: bool = False  # False also where the server's own would do harm (pouchdb)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        warm_ups = [asdict(w) for w in self.warm_ups]
        return {**self.plan.as_dict(), "warm_ups": warm_ups, "view_cleanup": self.view_cleanup}


async def _get_or_none(db: Database, doc_id: str) -> dict[str, Any] | None:
    try:
        return await db.get_doc(doc_id)
    except NotFound:
        return None


async def plan_install(couch: CouchDB, spec: InstallSpec) -> Plan:
    """Compare ``spec`` with the database; writes nothing. Raises :class:`InvalidNameError`
    for a database name CouchDB rejects (before any request) and what the API raises."""
    db = couch.database(spec.database)
    if not await db.exists():
        return Plan(spec.database, _all_created(spec))
    items = [PlanItem("database", spec.database, "unchanged")]
    if spec.security is not None:
        current = Security.from_doc(await db.security())
        same = current.as_doc() == spec.security.as_doc()
        items.append(PlanItem("security", "_security", "unchanged" if same else "updated"))
    for doc in spec.design_docs:
        found = await _get_or_none(db, doc["_id"])
        action: Action = (
            "created" if found is None else "unchanged" if design_matches(found, doc) else "updated"
        )
        items.append(PlanItem("design", doc["_id"], action))
    items += await _plan_seeds(db, spec)
    return Plan(spec.database, tuple(items))


def _all_created(spec: InstallSpec) -> tuple[PlanItem, ...]:
    items = [PlanItem("database", spec.database, "created")]
    if spec.security is not None:
        items.append(PlanItem("security", "_security", "updated"))
    items += [PlanItem("design", doc["_id"], "created") for doc in spec.design_docs]
    items += [PlanItem("seed", doc["_id"], "created") for doc in spec.seeds]
    return tuple(items)


async def _plan_seeds(db: Database, spec: InstallSpec) -> list[PlanItem]:
    if not spec.seeds:
        return []
    ids = [doc["_id"] for doc in spec.seeds]
    # A seed is written only where its id was never used: a deleted seed stays deleted, and
    # one the service has changed since is not overwritten.
    used = {row["id"] async for row in db.all_docs(keys=ids) if "value" in row}
    return [PlanItem("seed", i, "unchanged" if i in used else "created") for i in ids]


async def install(
    couch: CouchDB,
    spec: InstallSpec,
    *,
    warm_up_timeout: float = 3600.0,
    poll_interval: float = 1.0,
    progress: ProgressCallback | None = None,
) -> InstallReport:
    """Bring the database to ``spec``: idempotent, safe to run while the service runs, and
    safe to run twice at once. Returns what was done.

    Raises :class:`InvalidNameError` before any request for a bad database name;
    :class:`TimeoutError` (builtin) when an index takes longer than ``warm_up_timeout``
    seconds; the server's error (with a note naming the design document) for a view it
    refuses; what the API raises otherwise. On any failure before the swaps the old design
    documents stay in place and the temporary ones are deleted.
    """
    plan = await plan_install(couch, spec)
    db = couch.database(spec.database)
    await db.create(exists_ok=True)  # a 412 from a concurrent installer means "exists"
    wanted = {doc["_id"]: doc for doc in spec.design_docs}
    changed = [wanted[item.id] for item in plan.changes if item.kind == "design"]
    upgrade = _Upgrade(db, warm_up_timeout, poll_interval, progress, secrets.token_hex(4))
    warm_ups, cleaned = await upgrade.run(changed)
    if spec.security is not None:
        await _apply_security(db, spec.security)
    await _load_seeds(db, spec)
    return InstallReport(plan, warm_ups, cleaned)


async def _apply_security(db: Database, security: Security) -> None:
    if Security.from_doc(await db.security()).as_doc() == security.as_doc():
        return
    doc = security.as_doc()
    await db.set_security(admins=doc["admins"], members=doc["members"])


async def _load_seeds(db: Database, spec: InstallSpec) -> None:
    missing = {item.id for item in await _plan_seeds(db, spec) if item.action == "created"}
    docs = [doc for doc in spec.seeds if doc["_id"] in missing]
    for result in await db.bulk_docs(docs):
        # A conflict is a seed another installer wrote a moment ago: loaded once, as wanted.
        if result.error is not None and not isinstance(result.error, Conflict):
            raise result.error


@dataclass(frozen=True, slots=True)
class _Upgrade:
    """One installer's upgrade of its changed design documents (see the module docstring)."""

    db: Database
    warm_up_timeout: float
    poll_interval: float
    progress: ProgressCallback | None
    token: str  # this installer's own: staging never collides with a concurrent installer

    async def run(self, docs: list[dict[str, Any]]) -> tuple[tuple[WarmUp, ...], bool]:
        """Upgrade ``docs``; return the warm-ups and whether ``_view_cleanup`` ran."""
        if not docs:
            return (), False
        staged: list[tuple[dict[str, Any], str]] = []
        warm_ups = []
        try:
            for doc in docs:
                temp_id = f"{doc['_id']}{_UPGRADE_MARK}{self.token}"
                await self.stage(doc, temp_id)
                staged.append((doc, temp_id))
                warm_ups.append(await self.warm_up(doc, temp_id))
            for doc, temp_id in staged:
                await _swap(self.db, doc, temp_id)
                # The real id answers from the index just built. Querying it now also makes
                # pouchdb-server note that the real id uses that index: its _view_cleanup
                # would otherwise drop the index with the temporary document.
                await _query_views(self.db, doc, doc["_id"])
                await _report(self.progress, InstallProgress(doc["_id"], "swapped", 0.0))
        finally:
            await _drop_staged(self.db, [temp_id for _, temp_id in staged])
        return tuple(warm_ups), await self.clean_up()

    async def clean_up(self) -> bool:
        if await _is_pouchdb_server(self.db.couch):
            # pouchdb-server's _view_cleanup keeps an index while some design document has a
            # view of the same *name*, and it never learns that the real id now uses the
            # index built under the temporary id (it caches the index by its code): it would
            # drop the new index and keep the old one. Skipping it loses nothing there.
            logger.info("_view_cleanup skipped: pouchdb-server would drop the new index")
            return False
        # Queries that read the old index when the swap happened finish before it goes.
        await asyncio.sleep(_CLEANUP_GRACE)
        await self.db.view_cleanup()
        return True

    async def stage(self, doc: dict[str, Any], temp_id: str) -> None:
        try:
            await self.db.put_doc({**doc, "_id": temp_id})
        except CouchError as error:
            # CouchDB 3 refuses a map function that does not compile right here.
            error.add_note(f"while putting {doc['_id']} under the temporary id {temp_id!r}")
            raise
        await _report(self.progress, InstallProgress(doc["_id"], "staged", 0.0))

    async def warm_up(self, doc: dict[str, Any], temp_id: str) -> WarmUp:
        watch = _IndexWatch(self.db.couch, doc["_id"], temp_id, self.poll_interval, self.progress)
        watcher = asyncio.create_task(watch.run())
        deadline = asyncio.timeout(self.warm_up_timeout)
        try:
            async with deadline:
                await _query_views(self.db, doc, temp_id)
        except TimeoutError as error:
            if not deadline.expired():
                raise  # a time limit of the client's own, not the warm-up's
            raise TimeoutError(
                f"the index of {doc['_id']} was not built within {self.warm_up_timeout:g} s"
            ) from error
        finally:
            await _stop(watcher)
        seconds = time.monotonic() - watch.started
        await _report(self.progress, InstallProgress(doc["_id"], "checked", seconds))
        source: Literal["active_tasks", "view"] = "active_tasks" if watch.reported else "view"
        return WarmUp(doc["_id"], round(seconds, 3), source)


async def _is_pouchdb_server(couch: RawCouchDB) -> bool:
    return "express-pouchdb" in await couch.info()


async def _report(progress: ProgressCallback | None, step: InstallProgress) -> None:
    if progress is None:
        return
    result = progress(step)
    if result is not None:
        await result


async def _drop_staged(db: Database, temp_ids: list[str]) -> None:
    for temp_id in temp_ids:
        # Shielded: a cancelled install must still not leave its temporary documents behind.
        try:
            await asyncio.shield(_delete_quietly(db, temp_id))
        except CouchError as error:
            logger.warning("could not delete temporary design document %s: %s", temp_id, error)


async def _delete_quietly(db: Database, doc_id: str) -> None:
    current = await _get_or_none(db, doc_id)
    if current is not None:
        with contextlib.suppress(NotFound, Conflict):  # gone already: nothing to drop
            await db.delete_doc(doc_id, current["_rev"])


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # we are being cancelled ourselves, not just our helper


async def _query_views(db: Database, doc: dict[str, Any], design_id: str) -> None:
    for view, body in doc.get("views", {}).items():
        await _first_query(db, design_id, view, reduced="reduce" in body)


async def _first_query(db: Database, design_id: str, view: str, *, reduced: bool) -> None:
    name = design_id.removeprefix("_design/")
    while True:
        try:
            # The first query waits for the whole index; a map function the server cannot
            # run fails here, before the swap.
            async for _ in db.view(name, view, limit=1, reduce=False if reduced else None):
                break
        except ReadTimeout:
            # A long silence while a big index builds: the server keeps building, ask again.
            logger.info("view %s/%s still indexing; asking again", design_id, view)
            continue
        except CouchError as error:
            error.add_note(f"while building view {view!r} of design document {design_id!r}")
            raise
        return


class _IndexWatch:
    """Reports indexing progress until cancelled, and remembers whether the server ever
    reported any in ``_active_tasks`` (pouchdb-server never does; then the view's first answer
    is the only signal)."""

    def __init__(
        self,
        couch: RawCouchDB,
        design_id: str,
        temp_id: str,
        poll_interval: float,
        progress: ProgressCallback | None,
    ) -> None:
        self.couch = couch
        self.design_id = design_id
        self.temp_id = temp_id
        self.poll_interval = poll_interval
        self.progress = progress
        self.started = time.monotonic()
        self.reported = False

    async def run(self) -> None:
        while True:
            task = await _indexer_task(self.couch, self.temp_id)
            self.reported = self.reported or task is not None
            step = InstallProgress(
                self.design_id,
                "indexing",
                time.monotonic() - self.started,
                _int_or_none(task, "changes_done"),
                _int_or_none(task, "total_changes"),
            )
            await _report(self.progress, step)
            await asyncio.sleep(self.poll_interval)


async def _indexer_task(couch: RawCouchDB, temp_id: str) -> dict[str, Any] | None:
    try:
        tasks = await couch.active_tasks()
    except CouchError:
        return None  # progress is a nicety; the warm-up query decides
    for task in tasks:
        if task.get("type") == "indexer" and task.get("design_document") == temp_id:
            return task
    return None


def _int_or_none(task: Mapping[str, Any] | None, key: str) -> int | None:
    value = None if task is None else task.get(key)
    return value if isinstance(value, int) else None


async def _swap(db: Database, doc: dict[str, Any], temp_id: str) -> None:
    for _ in range(_SWAP_ATTEMPTS):
        current = await _get_or_none(db, doc["_id"])
        if design_matches(current, doc):
            return  # another installer swapped the same content in first
        rev = None if current is None else str(current["_rev"])
        try:
            await _copy_or_put(db, doc, temp_id, rev)
        except Conflict:
            continue  # changed meanwhile (by another installer): look again
        return
    raise Conflict(
        f"design document {doc['_id']!r} kept changing while it was swapped",
        status=409,
        doc_id=doc["_id"],
    )


async def _copy_or_put(db: Database, doc: dict[str, Any], temp_id: str, rev: str | None) -> None:
    try:
        await db.copy_doc(temp_id, doc["_id"], target_rev=rev)
    except (NotFound, MethodNotAllowed, BadRequest):
        # pouchdb-server routes COPY for plain documents only (404 for a design document).
        # The same body put under the real id is the equivalent: the index is keyed by it.
        await db.put_doc({**doc, "_rev": rev} if rev else doc)
