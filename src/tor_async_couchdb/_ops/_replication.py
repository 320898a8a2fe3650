"""Continuous two-way replication between two databases (one per data center), and its state.

:func:`setup_replication` writes two documents into the local server's ``_replicator``
database, ``<name>-push`` (local to remote) and ``<name>-pull`` (remote to local): they survive
restarts, and the server keeps them running. Both ends are written in CouchDB's object form, the
password moved into an ``Authorization`` header, so no URL holding credentials is stored or
logged; this module never logs the documents, and :func:`replication_status` shows only URLs
without credentials.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from .._config import BasicAuth
from .._exceptions import Conflict, HTTPStatusError, InvalidInputError, NotFound
from .._store import CouchDB

__all__ = [
    "Endpoint",
    "ReplicationState",
    "replication_name",
    "replication_status",
    "setup_replication",
]

_REPLICATOR = "_replicator"
_FAILED_STATES = frozenset({"error", "failed", "crashing"})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One end of a replication: a server's URL (without credentials), a database, and the
    credentials the *replicating server* uses to reach it."""

    url: str
    database: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInputError("a replication end needs an http(s)://host[:port] URL")
        if parts.username is not None:
            raise InvalidInputError("give a replication end's credentials apart from its URL")

    def as_replication_end(self) -> dict[str, Any]:
        """CouchDB's object form: the database URL, credentials in a header."""
        end: dict[str, Any] = {"url": f"{self.url.rstrip('/')}/{self.database}"}
        if self.user is not None:
            auth = BasicAuth(self.user, self.password or "")
            end["headers"] = {"Authorization": auth.header()}
        return end

    @property
    def location(self) -> str:
        """``URL/database``, for messages (no credentials)."""
        return f"{self.url.rstrip('/')}/{self.database}"


def replication_name(local: Endpoint, remote: Endpoint) -> str:
    """A stable document-id stem for the pair: the same pair always gets the same name."""
    parts = urlsplit(remote.url)
    raw = f"tac_{local.database}__{parts.hostname}_{parts.port or ''}_{remote.database}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", raw)


@dataclass(frozen=True, slots=True)
class ReplicationDoc:
    """One ``_replicator`` document written (or found as wanted) by :func:`setup_replication`."""

    id: str
    source: str
    target: str
    action: Literal["created", "updated", "unchanged"]


async def setup_replication(
    couch: CouchDB, local: Endpoint, remote: Endpoint, *, name: str | None = None
) -> tuple[ReplicationDoc, ReplicationDoc]:
    """Create or update the push and pull replications between ``local`` (on ``couch``'s
    server) and ``remote``; idempotent. Raises what the API raises."""
    stem = name or replication_name(local, remote)
    await couch.database(_REPLICATOR).create(exists_ok=True)
    push = await _put_replication(couch, f"{stem}-push", local, remote)
    pull = await _put_replication(couch, f"{stem}-pull", remote, local)
    return push, pull


async def _put_replication(
    couch: CouchDB, doc_id: str, source: Endpoint, target: Endpoint
) -> ReplicationDoc:
    replicator = couch.database(_REPLICATOR)
    wanted = {
        "source": source.as_replication_end(),
        "target": target.as_replication_end(),
        "continuous": True,
    }
    found = ReplicationDoc(doc_id, source.location, target.location, "unchanged")
    for _ in range(3):
        try:
            current: dict[str, Any] | None = await replicator.get_doc(doc_id)
        except NotFound:
            current = None
        if current is not None and all(current.get(k) == v for k, v in wanted.items()):
            return found
        body = {"_id": doc_id, **wanted}
        if current is not None:
            body["_rev"] = current["_rev"]
        try:
            await replicator.put_doc(body)
        except Conflict:
            continue  # the server (or another run) updated its state fields: look again
        action: Literal["created", "updated"] = "created" if current is None else "updated"
        return ReplicationDoc(doc_id, source.location, target.location, action)
    raise Conflict(f"replication {doc_id!r} kept changing", status=409, doc_id=doc_id)


@dataclass(frozen=True, slots=True)
class ReplicationState:
    """One replication's state. ``pending`` (changes not yet replicated: the lag) and
    ``docs_written`` come from CouchDB's scheduler; ``None`` where the server has no scheduler
    (pouchdb-server) or has not reported them yet."""

    id: str
    source: str
    target: str
    state: str
    error: str | None
    pending: int | None
    docs_written: int | None

    @property
    def failed(self) -> bool:
        """Whether the replication is failing."""
        return self.state in _FAILED_STATES

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form (no credentials: only URLs without them)."""
        return {**asdict(self), "failed": self.failed}


async def replication_status(couch: CouchDB, *, prefix: str = "") -> tuple[ReplicationState, ...]:
    """The state of every replication in ``_replicator`` whose id starts with ``prefix``, from
    CouchDB 3's ``_scheduler/docs`` where there is one, else from the documents' own
    ``_replication_state`` fields. Raises what the API raises."""
    scheduler = await _scheduler_docs(couch)
    states = []
    async for row in couch.database(_REPLICATOR).all_docs(include_docs=True):
        doc = row.get("doc") or {}
        if row["id"].startswith("_design/") or not row["id"].startswith(prefix):
            continue
        states.append(_state(doc, scheduler.get(row["id"])))
    return tuple(states)


async def _scheduler_docs(couch: CouchDB) -> dict[str, dict[str, Any]]:
    try:
        docs = await couch.scheduler_docs()
    except HTTPStatusError:
        return {}  # pouchdb-server has no scheduler: the documents' fields are all there is
    return {str(d.get("doc_id")): d for d in docs if d.get("database") == _REPLICATOR}


def _state(doc: Mapping[str, Any], job: Mapping[str, Any] | None) -> ReplicationState:
    info = (job or {}).get("info") or {}
    state = (job or {}).get("state") or doc.get("_replication_state") or "unknown"
    error = info.get("error") if isinstance(info, Mapping) else None
    error = error or (job or {}).get("last_error") or doc.get("_replication_state_reason")
    return ReplicationState(
        id=str(doc.get("_id")),
        source=_bare(doc.get("source")),
        target=_bare(doc.get("target")),
        state=str(state),
        error=None if error is None else str(error),
        pending=_count(info, "changes_pending"),
        docs_written=_count(info, "docs_written"),
    )


def _count(info: object, key: str) -> int | None:
    value = info.get(key) if isinstance(info, Mapping) else None
    return value if isinstance(value, int) else None


def _bare(end: object) -> str:
    """A replication end as a URL without credentials (a user may have written them in)."""
    url = end.get("url") if isinstance(end, Mapping) else end
    if not isinstance(url, str):
        return "?"
    parts = urlsplit(url)
    if not parts.scheme:
        return url  # a local database name
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))
