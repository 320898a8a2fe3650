"""The raw client of one CouchDB server: its lifecycle and the server-level API.

It holds the request engine (:mod:`._engine`), which every database handle it makes shares.
Everything here speaks in plain JSON data; the store's ``CouchDB`` extends it with models.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote, urlsplit

from .._config import Auth, BasicAuth, Limits, RetryPolicy, Timeouts
from .._exceptions import HTTPStatusError, InvalidInputError, NotFound, TransportError
from .._json import dumps
from .._transport import HTTP11Transport, Transport
from ._database import Database
from ._engine import ClientStats, Engine, RequestRecord, auth_from, ssl_context
from ._urls import check_db_name

__all__ = ["CouchDB"]


class CouchDB:
    """An asynchronous client of one CouchDB server (or cluster behind one URL).

    ``url`` may carry credentials (``http://user:pass@host:5984``), which become basic auth
    unless ``auth`` is given: a ``(user, password)`` tuple (basic), :class:`BasicAuth`,
    :class:`SessionAuth`, :class:`BearerAuth` or :class:`TokenAuth` (a token that expires, fetched
    by a function of yours). ``verify`` is True (system CAs), a CA bundle
    path, or False (warns); ``client_cert`` a PEM path or ``(cert, key)`` paths. ``transport``
    replaces the HTTP implementation (tests pass a :class:`MockTransport`). ``on_request`` is
    called with a :class:`RequestRecord` after every request, for tracing.

    Use it as ``async with CouchDB(...) as couch:`` or call :meth:`aclose` when done.
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:5984",
        *,
        auth: Auth | tuple[str, str] | None = None,
        timeouts: Timeouts | None = None,
        limits: Limits | None = None,
        retry: RetryPolicy | None = None,
        verify: bool | str = True,
        client_cert: str | tuple[str, str] | None = None,
        transport: Transport | None = None,
        on_request: Callable[[RequestRecord], None] | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
            raise InvalidInputError(f"the CouchDB URL must be http(s)://host[:port], got {shown!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        timeouts = timeouts if timeouts is not None else Timeouts()
        if transport is None:
            context = ssl_context(verify, client_cert) if parts.scheme == "https" else None
            transport = HTTP11Transport(
                scheme=parts.scheme,
                host=parts.hostname,
                port=port,
                ssl=context,
                server_hostname=parts.hostname if context else None,
                timeouts=timeouts,
                limits=limits if limits is not None else Limits(),
            )
        self._engine = Engine(
            origin=f"{parts.scheme}://{parts.hostname}:{port}",
            prefix=parts.path.rstrip("/"),
            auth=auth_from(auth, parts.username, parts.password),
            retry=retry if retry is not None else RetryPolicy(),
            timeouts=timeouts,
            transport=transport,
            on_request=on_request,
        )

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<CouchDB {self.url} {state} auth={self._engine.auth!r}>"

    @property
    def url(self) -> str:
        """The server's URL, without credentials."""
        return self._engine.url

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._engine.closed

    @property
    def _transport(self) -> Transport:
        return self._engine.transport

    def stats(self) -> ClientStats:
        """A snapshot of the client's counters."""
        return self._engine.stats()

    # -- lifecycle ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every connection. Idempotent; the client cannot be used afterwards."""
        await self._engine.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        engine = getattr(self, "_engine", None)
        if engine is not None and not engine.closed:
            warnings.warn(
                f"{self!r} was garbage-collected without aclose(): connections leaked",
                ResourceWarning,
                stacklevel=1,
            )

    # -- the server API ----------------------------------------------------------------------

    def database(self, name: str) -> Database:
        """A handle of database ``name`` (no I/O). Raises :class:`InvalidNameError`."""
        return Database(self, check_db_name(name))

    async def info(self) -> dict[str, Any]:
        """``GET /``: the server's welcome (name, version, vendor)."""
        answer: dict[str, Any] = await self._engine.json("GET", "/")
        return answer

    async def up(self) -> bool:
        """Whether the server is up and ready: ``GET /_up`` (``GET /`` where the server has no
        ``/_up``, as pouchdb-server). Transport errors and 5xx answer False."""
        try:
            try:
                answer = await self._engine.json("GET", "/_up")
            except NotFound:
                answer = {"status": "ok"} if await self.info() else {}
        except (TransportError, HTTPStatusError):
            return False
        return isinstance(answer, dict) and answer.get("status") == "ok"

    async def all_dbs(self) -> list[str]:
        """``GET /_all_dbs``: the names of every database."""
        answer: list[str] = await self._engine.json("GET", "/_all_dbs")
        return answer

    async def uuids(self, count: int = 1) -> list[str]:
        """``GET /_uuids``: ``count`` server-made UUIDs."""
        answer = await self._engine.json("GET", f"/_uuids?count={int(count)}")
        uuids: list[str] = answer["uuids"]
        return uuids

    async def session(self) -> dict[str, Any]:
        """``GET /_session``: who the server thinks this client is."""
        answer: dict[str, Any] = await self._engine.json("GET", "/_session")
        return answer

    async def active_tasks(self) -> list[dict[str, Any]]:
        """``GET /_active_tasks``: compactions, indexing and replications under way."""
        answer: list[dict[str, Any]] = await self._engine.json("GET", "/_active_tasks")
        return answer

    async def scheduler_docs(self) -> list[dict[str, Any]]:
        """``GET /_scheduler/docs``: the state of every replication of the ``_replicator``
        databases (CouchDB 3's scheduler). Raises :class:`NotFound` on a server without one
        (pouchdb-server)."""
        answer = await self._engine.json("GET", "/_scheduler/docs")
        docs = answer.get("docs") if isinstance(answer, dict) else None
        return [doc for doc in docs if isinstance(doc, dict)] if isinstance(docs, list) else []

    async def replicate(
        self,
        source: str | Mapping[str, Any],
        target: str | Mapping[str, Any],
        *,
        create_target: bool = False,
        continuous: bool = False,
        doc_ids: Sequence[str] | None = None,
        filter: str | None = None,
        selector: Mapping[str, Any] | None = None,
        cancel: bool = False,
    ) -> dict[str, Any]:
        """``POST /_replicate``: replicate once (or continuously) from ``source`` to ``target``.

        Each end is a database name on this server, a URL, or CouchDB's object form
        (``{"url": ..., "headers": {...}}``). Credentials in a URL are moved into an
        ``Authorization`` header so they are not stored in the replication's id or logs.
        """
        body = _replication_body(
            source,
            target,
            create_target=create_target,
            continuous=continuous,
            doc_ids=doc_ids,
            filter_name=filter,
            selector=selector,
        )
        if cancel:
            body["cancel"] = True
        answer: dict[str, Any] = await self._engine.json(
            "POST", "/_replicate", dumps(body, what="replication")
        )
        return answer

    async def schedule_replication(
        self,
        doc_id: str,
        source: str | Mapping[str, Any],
        target: str | Mapping[str, Any],
        *,
        continuous: bool = True,
        create_target: bool = False,
        doc_ids: Sequence[str] | None = None,
        filter: str | None = None,
        selector: Mapping[str, Any] | None = None,
    ) -> str:
        """Create a replication as document ``doc_id`` of the ``_replicator`` database.

        Unlike :meth:`replicate`, it survives server restarts: the way to keep data centers in
        sync. Ends as for :meth:`replicate`. Returns the document's revision; raises
        :class:`Conflict` if a replication of that id exists.
        """
        body = _replication_body(
            source,
            target,
            create_target=create_target,
            continuous=continuous,
            doc_ids=doc_ids,
            filter_name=filter,
            selector=selector,
        )
        answer = await self.database("_replicator").put_doc({"_id": doc_id, **body})
        return str(answer["rev"])

    async def cancel_replication(self, doc_id: str) -> bool:
        """Delete replication ``doc_id`` from ``_replicator``; False if there was none."""
        replicator = self.database("_replicator")
        try:
            doc = await replicator.get_doc(doc_id)
            await replicator.delete_doc(doc_id, doc["_rev"])
        except NotFound:
            return False
        return True


def _replication_body(
    source: str | Mapping[str, Any],
    target: str | Mapping[str, Any],
    *,
    create_target: bool,
    continuous: bool,
    doc_ids: Sequence[str] | None,
    filter_name: str | None,
    selector: Mapping[str, Any] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": _replication_end(source),
        "target": _replication_end(target),
    }
    if create_target:
        body["create_target"] = True
    if continuous:
        body["continuous"] = True
    if doc_ids is not None:
        body["doc_ids"] = list(doc_ids)
    if filter_name is not None:
        body["filter"] = filter_name
    if selector is not None:
        body["selector"] = dict(selector)
    return body


def _replication_end(end: str | Mapping[str, Any]) -> str | dict[str, Any]:
    if not isinstance(end, str):
        return dict(end)
    parts = urlsplit(end)
    if parts.username is None:
        # A plain string: pouchdb-server takes no object form (CouchDB takes both).
        return end
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    bare = parts._replace(netloc=netloc).geturl()
    auth = BasicAuth(unquote(parts.username), unquote(parts.password or ""))
    return {"url": bare, "headers": {"Authorization": auth.header()}}
