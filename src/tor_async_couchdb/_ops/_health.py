"""Health of a service's database: server up, credentials valid, database reachable, design
documents present and current, all within a time limit.

A service calls :func:`check_health` from its own ``/_health`` endpoint; the CLI's ``health``
command prints the same report and exits 0 or 1. A check that could not run because an earlier
one failed is reported as not checked (``ok`` ``None``), never guessed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .._exceptions import CouchError, HTTPStatusError, NotFound, TransportError, Unauthorized
from .._store import CouchDB, Database
from ._sources import design_matches

__all__ = ["Check", "HealthReport", "check_health"]


@dataclass(frozen=True, slots=True)
class Check:
    """One health check: ``ok`` True, False, or ``None`` when it could not be run."""

    name: str
    ok: bool | None
    detail: str


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Every check of one database, in the order they ran."""

    database: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return all(check.ok is True for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "database": self.database,
            "ok": self.ok,
            "checks": [asdict(c) for c in self.checks],
        }


_NAMES = ("server", "credentials", "database", "design documents")


async def check_health(
    couch: CouchDB,
    database: str,
    *,
    design_docs: Sequence[dict[str, Any]] = (),
    time_limit: float = 10.0,
) -> HealthReport:
    """Check the server, the credentials, the database and that each of ``design_docs`` is
    installed as given (as :func:`tor_async_couchdb.design_docs` makes them), all within
    ``time_limit`` seconds. Never raises for an unhealthy server: the report says what failed.
    Raises :class:`InvalidNameError` for a database name CouchDB rejects.
    """
    db = couch.database(database)
    checks: list[Check] = []
    try:
        async with asyncio.timeout(time_limit):
            await _run_checks(couch, db, design_docs, checks)
    except TimeoutError:
        checks.append(Check(_NAMES[len(checks)], False, f"no answer within {time_limit:g} s"))
    # Whatever did not run is named, so a report always lists every check.
    checks += [Check(name, None, "not checked") for name in _NAMES[len(checks) :]]
    return HealthReport(database, tuple(checks))


async def _run_checks(
    couch: CouchDB,
    db: Database,
    design_docs: Sequence[dict[str, Any]],
    checks: list[Check],
) -> None:
    for step in (_server, _credentials, _database):
        check = await step(couch, db)
        checks.append(check)
        if not check.ok:
            return
    checks.append(await _designs(db, design_docs))


async def _server(couch: CouchDB, db: Database) -> Check:
    try:
        info = await couch.info()
    except Unauthorized:
        return Check("server", True, "up (it refused the credentials)")
    except (TransportError, HTTPStatusError) as error:
        return Check("server", False, f"down: {error}")
    version = info.get("version", "unknown version")
    return Check("server", True, f"up, version {version}")


async def _credentials(couch: CouchDB, db: Database) -> Check:
    try:
        session = await couch.session()
    except Unauthorized as error:
        return Check("credentials", False, f"refused: {error.reason or error}")
    except CouchError as error:
        return Check("credentials", False, f"not verified: {error}")
    name = (session.get("userCtx") or {}).get("name")
    return Check("credentials", True, f"valid, as {name}" if name else "anonymous access")


async def _database(couch: CouchDB, db: Database) -> Check:
    try:
        info = await db.info()
    except NotFound:
        return Check("database", False, f"{db.name} does not exist")
    except CouchError as error:
        return Check("database", False, f"{db.name} not reachable: {error}")
    return Check("database", True, f"{db.name} reachable, {info.get('doc_count', '?')} documents")


async def _designs(db: Database, design_docs: Sequence[dict[str, Any]]) -> Check:
    if not design_docs:
        return Check("design documents", True, "none expected")
    missing, outdated = [], []
    for doc in design_docs:
        try:
            current = await db.get_doc(doc["_id"])
        except NotFound:
            missing.append(doc["_id"])
            continue
        if not design_matches(current, doc):
            outdated.append(doc["_id"])
    if not missing and not outdated:
        return Check("design documents", True, f"{len(design_docs)} present and current")
    parts = [f"missing: {', '.join(missing)}"] if missing else []
    parts += [f"outdated: {', '.join(outdated)}"] if outdated else []
    return Check("design documents", False, "; ".join(parts))
