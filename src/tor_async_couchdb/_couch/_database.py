"""One database's raw API: the database itself, documents, attachments and bulk writes; views,
``_all_docs``, ``_find`` and ``_changes`` through the paging and changes modules.

Plain JSON data in and out: models live in the store, which extends this class.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from operator import methodcaller
from typing import TYPE_CHECKING, Any, Literal

from .._config import DEFAULT_PAGE_SIZE
from .._exceptions import (
    InvalidInputError,
    NotFound,
    PreconditionFailed,
)
from .._ids import check_doc_id
from .._json import dumps, loads
from ._bulk import BulkResult, check_bulk_ids, match_bulk, match_replicated
from ._changes import follow_changes, read_changes
from ._echoes import saved_echo, settle_echoes
from ._engine import Engine
from ._paging import MISSING, map_view_params, paged_find, paged_pages, paged_rows, view_params
from ._urls import design_name, doc_path, query_string, quote_segment

if TYPE_CHECKING:
    from ._server import CouchDB

__all__ = ["Database"]

_get_id = methodcaller("get", "_id")  # doc.get("_id") of every document, in C


class Database:
    """A handle of one database on a :class:`CouchDB` server; made by ``couch.database(name)``.

    Making a handle does no I/O; :meth:`create` makes the database. Every method raises
    :class:`TransportError` or :class:`HTTPStatusError` subclasses for failures, and
    :class:`InvalidInputError` subclasses, before any request, for bad input.
    """

    __slots__ = ("_base", "_couch", "_engine", "name")

    def __init__(self, couch: CouchDB, name: str) -> None:
        self._couch = couch
        self._engine: Engine = couch._engine
        self.name = name
        self._base = "/" + doc_path(name) if name.startswith("_") else "/" + quote_segment(name)

    def __repr__(self) -> str:
        return f"<Database {self.name!r} on {self._couch.url}>"

    @property
    def couch(self) -> CouchDB:
        """The client this handle belongs to."""
        return self._couch

    # -- the database itself -----------------------------------------------------------------

    async def create(self, *, exists_ok: bool = False, partitioned: bool = False) -> bool:
        """Create the database. Returns False if it existed and ``exists_ok`` (a 412 is the
        usual race of two installers and is taken as "exists"). Raises PreconditionFailed."""
        target = self._base + ("?partitioned=true" if partitioned else "")
        try:
            await self._engine.json("PUT", target, safe=True)
        except PreconditionFailed:
            if exists_ok:
                return False
            raise
        return True

    async def delete_database(self, *, missing_ok: bool = False) -> bool:
        """Delete the database and every document in it. Returns False if it was missing and
        ``missing_ok``. (Named in full: ``delete`` is the store's delete of one model.)"""
        try:
            await self._engine.json("DELETE", self._base, safe=True)
        except NotFound:
            if missing_ok:
                return False
            raise
        return True

    async def exists(self) -> bool:
        """Whether the database exists (``HEAD /db``)."""
        response = await self._engine.send("HEAD", self._base)
        if response.status == 404:
            return False
        if response.status >= 300:
            raise self._engine.status_error("HEAD", self._base, response, None)
        return True

    async def info(self) -> dict[str, Any]:
        """``GET /db``: document counts, sizes and the update sequence (an opaque value)."""
        answer: dict[str, Any] = await self._engine.json("GET", self._base)
        return answer

    async def security(self) -> dict[str, Any]:
        """``GET /db/_security``: the admins and members objects."""
        answer: dict[str, Any] = await self._engine.json("GET", self._base + "/_security")
        return answer

    async def set_security(
        self,
        *,
        admins: Mapping[str, Sequence[str]] | None = None,
        members: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """``PUT /db/_security`` with ``{"names": [...], "roles": [...]}`` objects."""
        body = {"admins": dict(admins or {}), "members": dict(members or {})}
        await self._engine.json(
            "PUT", self._base + "/_security", dumps(body, what="security object"), safe=True
        )

    async def compact(self, design: str | None = None) -> None:
        """Start compaction of the database, or of one design document's views."""
        target = self._base + "/_compact" + (f"/{design_name(design)}" if design else "")
        await self._engine.json("POST", target, b"{}", safe=True)

    async def view_cleanup(self) -> None:
        """Remove index files no design document uses any more."""
        await self._engine.json("POST", self._base + "/_view_cleanup", b"{}", safe=True)

    async def design_info(self, design: str) -> dict[str, Any]:
        """``GET /db/_design/NAME/_info``: the view index's size and state."""
        target = f"{self._base}/_design/{design_name(design)}/_info"
        answer: dict[str, Any] = await self._engine.json("GET", target)
        return answer

    # -- documents ---------------------------------------------------------------------------

    def _doc_target(self, doc_id: str) -> str:
        return f"{self._base}/{doc_path(check_doc_id(doc_id))}"

    async def get_doc(
        self,
        doc_id: str,
        *,
        rev: str | None = None,
        revs_info: bool = False,
        conflicts: bool = False,
        deleted_conflicts: bool = False,
        attachments: bool = False,
        r: int | None = None,
    ) -> dict[str, Any]:
        """``GET /db/{id}``: the document. ``r`` asks a cluster for that many copies' answers
        (the read quorum). Raises :class:`NotFound`."""
        target = self._doc_target(doc_id)
        if rev or revs_info or conflicts or deleted_conflicts or attachments or r is not None:
            target += query_string(
                {
                    "rev": rev,
                    "revs_info": revs_info or None,
                    "conflicts": conflicts or None,
                    "deleted_conflicts": deleted_conflicts or None,
                    "attachments": attachments or None,
                    "r": r,
                }
            )
        doc: dict[str, Any] = await self._engine.json("GET", target, doc_id=doc_id)
        return doc

    async def get_open_revs(
        self,
        doc_id: str,
        revs: Sequence[str] | Literal["all"] = "all",
        *,
        history: bool = False,
        r: int | None = None,
    ) -> list[dict[str, Any]]:
        """``GET /db/{id}?open_revs=...``: the leaf revisions (``{"ok": doc}`` or
        ``{"missing": rev}`` each), as replication conflicts are inspected. ``history`` adds
        each leaf's ancestors (``_revisions``); ``r`` is the read quorum."""
        target = self._doc_target(doc_id) + query_string(
            {
                "open_revs": revs if revs == "all" else list(revs),
                "revs": history or None,
                "r": r,
            }
        )
        answer: list[dict[str, Any]] = await self._engine.json("GET", target, doc_id=doc_id)
        return answer

    async def head_doc(self, doc_id: str) -> str | None:
        """The current revision of a document, or None if it does not exist (``HEAD``)."""
        target = self._doc_target(doc_id)
        response = await self._engine.send("HEAD", target)
        if response.status == 404:
            return None
        if response.status >= 300:
            raise self._engine.status_error("HEAD", target, response, doc_id)
        etag = response.headers.get("etag", "")
        if etag.startswith('"') and not etag.startswith("W/"):
            return etag.strip('"')
        # pouchdb-server's ETag is a body hash, not the revision: ask for the document.
        return str((await self.get_doc(doc_id))["_rev"])

    async def put_doc(
        self, doc: Mapping[str, Any], *, batch: bool = False, w: int | None = None
    ) -> dict[str, Any]:
        """``PUT /db/{doc["_id"]}``: create (no ``_rev``) or update a document.

        Returns ``{"ok", "id", "rev", "accepted"}``; ``doc`` itself is not changed.
        ``accepted`` is True for a ``202 Accepted``: a cluster took the write on fewer copies
        than its write quorum, so it is not yet committed (see :class:`BulkResult`). ``w``
        asks for that many copies before the answer. Raises :class:`Conflict` if ``_rev`` is
        not the latest, :class:`InvalidInputError` if the document has no ``_id`` or is not
        JSON.
        """
        doc_id = doc.get("_id")
        if doc_id is None:
            raise InvalidInputError("put_doc needs a document with an '_id' (or use post_doc)")
        target = self._doc_target(doc_id)
        if batch or w is not None:
            target += query_string({"batch": "ok" if batch else None, "w": w})
        body = dumps(doc, what=f"document {doc_id!r}")
        response, maybe_done = await self._engine.exchange("PUT", target, body, safe=True)
        if response.status == 409 and maybe_done:
            # A retry after a lost answer: the 409 may be this write's own first attempt.
            echo = await saved_echo(self, doc_id, doc)
            if echo is not None:
                return echo
        if response.status >= 300:
            raise self._engine.status_error("PUT", target, response, doc_id)
        answer: dict[str, Any] = loads(response.body, method="PUT", url=self._engine.url_of(target))
        answer["accepted"] = response.status == 202
        return answer

    async def post_doc(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /db``: create a document; the server picks the id if it has none. Not
        retried after it may have reached the server (it could create a duplicate)."""
        body = dumps(doc, what="document")
        answer: dict[str, Any] = await self._engine.json(
            "POST", self._base, body, safe="_id" in doc, doc_id=doc.get("_id")
        )
        return answer

    async def delete_doc(self, doc_id: str, rev: str) -> dict[str, Any]:
        """``DELETE /db/{id}?rev=...``: ``{"ok", "id", "rev", "accepted"}`` (as for
        :meth:`put_doc`). Raises :class:`Conflict`, :class:`NotFound`."""
        if not rev:
            raise InvalidInputError(f"deleting document {doc_id!r} needs its current rev")
        target = self._doc_target(doc_id) + query_string({"rev": rev})
        response, maybe_done = await self._engine.exchange("DELETE", target, safe=True)
        if response.status in (404, 409) and maybe_done and await self.head_doc(doc_id) is None:
            # A retry after a lost answer, and the document is gone: the first attempt did it.
            return {"ok": True, "id": doc_id, "rev": None}
        if response.status >= 300:
            raise self._engine.status_error("DELETE", target, response, doc_id)
        answer: dict[str, Any] = loads(
            response.body, method="DELETE", url=self._engine.url_of(target)
        )
        answer["accepted"] = response.status == 202
        return answer

    async def copy_doc(
        self, source_id: str, target_id: str, *, target_rev: str | None = None
    ) -> dict[str, Any]:
        """``COPY /db/{source}`` to ``target_id`` (``target_rev`` to overwrite a document)."""
        destination = target_id + (f"?rev={target_rev}" if target_rev else "")
        check_doc_id(target_id)
        target = self._doc_target(source_id)
        response = await self._engine.send(
            "COPY", target, headers=[("Destination", _header_safe(destination))], safe=True
        )
        if response.status >= 300:
            raise self._engine.status_error("COPY", target, response, source_id)
        answer: dict[str, Any] = loads(response.body, method="COPY", url=target)
        return answer

    # -- attachments -------------------------------------------------------------------------

    def _attachment_target(self, doc_id: str, name: str) -> str:
        if not isinstance(name, str) or not name or name.startswith("_"):
            raise InvalidInputError(f"invalid attachment name {name!r}")
        return f"{self._doc_target(doc_id)}/{doc_path(name)}"

    async def put_attachment(
        self, doc_id: str, name: str, data: bytes, *, content_type: str, rev: str | None = None
    ) -> dict[str, Any]:
        """``PUT /db/{id}/{name}``: add or replace an attachment (creates the document if
        ``rev`` is None and it does not exist). Returns ``{"ok", "id", "rev"}``."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInputError("attachment data must be bytes")
        target = self._attachment_target(doc_id, name) + query_string({"rev": rev})
        response = await self._engine.send(
            "PUT", target, bytes(data), headers=[("Content-Type", content_type)], safe=True
        )
        if response.status >= 300:
            raise self._engine.status_error("PUT", target, response, doc_id)
        answer: dict[str, Any] = loads(response.body, method="PUT", url=target)
        return answer

    async def get_attachment(self, doc_id: str, name: str) -> tuple[bytes, str]:
        """``GET /db/{id}/{name}``: the attachment's bytes and content type."""
        target = self._attachment_target(doc_id, name)
        response = await self._engine.send("GET", target, headers=[("Accept", "*/*")])
        if response.status >= 300:
            raise self._engine.status_error("GET", target, response, doc_id)
        return response.body, response.headers.get("content-type", "application/octet-stream")

    async def delete_attachment(self, doc_id: str, name: str, rev: str) -> dict[str, Any]:
        """``DELETE /db/{id}/{name}?rev=...``."""
        target = self._attachment_target(doc_id, name) + query_string({"rev": rev})
        answer: dict[str, Any] = await self._engine.json("DELETE", target, doc_id=doc_id, safe=True)
        return answer

    # -- bulk --------------------------------------------------------------------------------

    async def bulk_docs(
        self, docs: Sequence[Mapping[str, Any]], *, new_edits: bool = True
    ) -> list[BulkResult]:
        """``POST /db/_bulk_docs``: save many documents in one request.

        Returns one :class:`BulkResult` per document, in the order of ``docs``, matched by id
        (never by position: some servers reorder). Documents without ``_id`` get one from the
        server; then the request is not retried after it may have reached the server.
        """
        if not docs:
            return []
        ids = check_bulk_ids(list(map(_get_id, docs)))
        body: dict[str, Any] = {"docs": docs}
        if not new_edits:
            body["new_edits"] = False
        encoded = dumps(body, what="bulk request")
        target = self._base + "/_bulk_docs"
        response, maybe_done = await self._engine.exchange(
            "POST", target, encoded, safe=None not in ids
        )
        if response.status >= 300:
            raise self._engine.status_error("POST", target, response, None)
        answer = loads(response.body, method="POST", url=self._engine.url_of(target))
        if not new_edits:
            return match_replicated(ids, answer, self._engine.url_of(target))
        results = match_bulk(ids, answer, self._engine.url_of(target))
        if maybe_done:
            results = await settle_echoes(self, docs, results)
        return results

    async def bulk_get(self, docs: Sequence[tuple[str, str | None]]) -> list[dict[str, Any]]:
        """``POST /db/_bulk_get`` for ``(id, rev or None)`` pairs: CouchDB's answer items
        (``{"id", "docs": [{"ok": doc} | {"error": ...}]}``), in request order."""
        items = [
            {"id": check_doc_id(doc_id), **({"rev": rev} if rev else {})} for doc_id, rev in docs
        ]
        answer = await self._engine.json(
            "POST", self._base + "/_bulk_get", dumps({"docs": items}), safe=True
        )
        results: list[dict[str, Any]] = answer["results"]
        return results

    # -- _all_docs and views -----------------------------------------------------------------

    def all_docs(
        self,
        *,
        keys: Sequence[str] | None = None,
        startkey: Any = MISSING,
        endkey: Any = MISSING,
        inclusive_end: bool = True,
        descending: bool = False,
        include_docs: bool = False,
        conflicts: bool = False,
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> AsyncIterator[dict[str, Any]]:
        """The rows of ``_all_docs`` (``id``, ``key``, ``value``, ``doc`` with include_docs),
        paged by key in bounded memory: at most ``page_size`` rows are held at once."""
        return paged_rows(
            self._engine,
            self._base + "/_all_docs",
            keys=keys,
            params=view_params(
                key=MISSING,
                startkey=startkey,
                endkey=endkey,
                startkey_docid=None,
                endkey_docid=None,
                inclusive_end=inclusive_end,
                descending=descending,
                include_docs=include_docs,
                conflicts=conflicts,
                update=None,
                extra=None,
            ),
            limit=limit,
            page_size=page_size,
            reduced=False,
        )

    def view(
        self,
        design: str,
        view: str,
        *,
        key: Any = MISSING,
        keys: Sequence[Any] | None = None,
        startkey: Any = MISSING,
        endkey: Any = MISSING,
        startkey_docid: str | None = None,
        endkey_docid: str | None = None,
        inclusive_end: bool = True,
        descending: bool = False,
        include_docs: bool = False,
        conflicts: bool = False,
        reduce: bool | None = None,
        group: bool | None = None,
        group_level: int | None = None,
        update: Literal["true", "false", "lazy"] | None = None,
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> AsyncIterator[dict[str, Any]]:
        """The rows of a view, paged by key (``startkey`` + ``startkey_docid`` of the next
        row), holding at most one page of ``page_size`` rows. (``skip`` is used only within one
        key, on servers that ignore ``startkey_docid``.)

        ``reduce``/``group``/``group_level`` read a reduce view's grouped rows. ``update``
        is CouchDB 3's ``update`` parameter (``"false"`` reads a stale index fast).
        """
        extra: dict[str, Any] = {}
        if reduce is not None:
            extra["reduce"] = reduce
        if group is not None:
            extra["group"] = group
        if group_level is not None:
            extra["group_level"] = group_level
        params = view_params(
            key=key,
            startkey=startkey,
            endkey=endkey,
            startkey_docid=startkey_docid,
            endkey_docid=endkey_docid,
            inclusive_end=inclusive_end,
            descending=descending,
            include_docs=include_docs,
            conflicts=conflicts,
            update=update,
            extra=extra,
        )
        target = _view_target(self._base, design, view)
        reduced = bool(reduce is not False and (group or group_level is not None or reduce))
        return paged_rows(
            self._engine,
            target,
            keys=keys,
            params=params,
            limit=limit,
            page_size=page_size,
            reduced=reduced,
        )

    def view_pages(
        self, design: str, view: str, *, page_size: int = DEFAULT_PAGE_SIZE, **options: Any
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """The rows of a map view as :meth:`view` reads them, a page (a list of at most
        ``page_size`` rows) at a time, for code that handles a page at once. ``options``:
        ``keys``, ``startkey``, ``endkey``, ``inclusive_end``, ``descending`` and
        ``include_docs``, as :meth:`view` takes them."""
        keys, params = map_view_params(**options)
        target = _view_target(self._base, design, view)
        return paged_pages(
            self._engine,
            target,
            keys=keys,
            params=params,
            limit=None,
            page_size=page_size,
            reduced=False,
        )

    # -- Mango -------------------------------------------------------------------------------

    def find(
        self,
        selector: Mapping[str, Any],
        *,
        fields: Sequence[str] | None = None,
        sort: Sequence[str | Mapping[str, str]] | None = None,
        limit: int | None = None,
        use_index: str | Sequence[str] | None = None,
        conflicts: bool = False,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> AsyncIterator[dict[str, Any]]:
        """``POST /db/_find``: the matching documents, paged by ``bookmark`` in bounded memory.

        Where the server gives no bookmark (pouchdb-server), a result larger than one page is
        read again sorted by ``_id`` and paged by ``_id`` (greater than the last one seen); a
        query with ``sort`` or ``use_index`` cannot be paged that way and raises
        :class:`InvalidInputError` before yielding anything, unless it fits in one page.
        """
        return paged_find(
            self._engine,
            self._base,
            selector,
            fields=fields,
            sort=sort,
            limit=limit,
            use_index=use_index,
            conflicts=conflicts,
            page_size=page_size,
        )

    async def create_index(
        self,
        fields: Sequence[str | Mapping[str, str]],
        *,
        name: str | None = None,
        design: str | None = None,
        partial_filter: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``POST /db/_index``: a Mango (json) index. Returns ``{"result", "id", "name"}``."""
        index: dict[str, Any] = {"fields": list(fields)}
        if partial_filter is not None:
            index["partial_filter_selector"] = dict(partial_filter)
        body: dict[str, Any] = {"index": index, "type": "json"}
        if name is not None:
            body["name"] = name
        if design is not None:
            body["ddoc"] = design
        answer: dict[str, Any] = await self._engine.json(
            "POST", self._base + "/_index", dumps(body, what="index"), safe=True
        )
        return answer

    async def indexes(self) -> list[dict[str, Any]]:
        """``GET /db/_index``: every Mango index."""
        answer = await self._engine.json("GET", self._base + "/_index")
        indexes: list[dict[str, Any]] = answer["indexes"]
        return indexes

    async def delete_index(self, design: str, name: str) -> None:
        """``DELETE /db/_index/{design}/json/{name}`` (design with or without ``_design/``)."""
        design_id = design if design.startswith("_design/") else f"_design/{design}"
        # The encoded-slash form is the one both CouchDB and pouchdb-server accept.
        target = f"{self._base}/_index/{quote_segment(design_id)}/json/{quote_segment(name)}"
        await self._engine.json("DELETE", target, safe=True)

    # -- _changes ----------------------------------------------------------------------------

    async def changes(
        self,
        *,
        since: str | int = 0,
        limit: int | None = None,
        include_docs: bool = False,
        style: Literal["main_only", "all_docs"] = "main_only",
        conflicts: bool = False,
        descending: bool = False,
        doc_ids: Sequence[str] | None = None,
        filter: str | None = None,
        selector: Mapping[str, Any] | None = None,
        longpoll: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - CouchDB's parameter, for the server
        heartbeat: float = 10.0,
        params: Mapping[str, Any] | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """A one-shot ``_changes`` request: the changes and the ``last_seq`` to resume from.

        Sequences are opaque strings (never do arithmetic on them). ``longpoll=True`` waits
        until there is at least one change after ``since``: up to ``timeout`` seconds where the
        server honours it (CouchDB; pouchdb-server waits for a change), else for as long as the
        server keeps sending a heartbeat every ``heartbeat`` seconds.
        """
        return await read_changes(
            self._engine,
            self._base,
            since=since,
            limit=limit,
            include_docs=include_docs,
            style=style,
            conflicts=conflicts,
            descending=descending,
            doc_ids=doc_ids,
            filter=filter,
            selector=selector,
            longpoll=longpoll,
            timeout=timeout,
            heartbeat=heartbeat,
            params=params,
        )

    def feed(
        self,
        *,
        since: str | int = "now",
        include_docs: bool = False,
        style: Literal["main_only", "all_docs"] = "main_only",
        conflicts: bool = False,
        doc_ids: Sequence[str] | None = None,
        filter: str | None = None,
        selector: Mapping[str, Any] | None = None,
        heartbeat: float = 10.0,
        reconnect_delay: float = 0.5,
        max_reconnect_delay: float = 30.0,
        dedupe_window: int = 10_000,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """A continuous ``_changes`` feed as an endless async iterator of changes.

        The server sends an empty line every ``heartbeat`` seconds; silence for three
        heartbeats counts as a dead connection. After a dropped connection or a transient
        error the feed reconnects (with capped exponential backoff) and resumes from the last
        sequence it yielded. No change is missed. On one node no change comes twice; a
        cluster may send changes again after a reconnect (its sequences are per shard copy):
        within one run, the feed drops a change whose id and revisions it already yielded
        (remembering the last ``dedupe_window`` ids), so a consumer sees each change at least
        once, and twice only if its id fell out of that window (see ``docs/clusters.md``).
        Stop it with ``break`` or by cancelling the task; HTTP errors other than 5xx/429 end
        it.
        """
        return follow_changes(
            self._engine,
            self._base,
            self.name,
            since=since,
            include_docs=include_docs,
            style=style,
            conflicts=conflicts,
            doc_ids=doc_ids,
            filter=filter,
            selector=selector,
            heartbeat=heartbeat,
            reconnect_delay=reconnect_delay,
            max_reconnect_delay=max_reconnect_delay,
            dedupe_window=dedupe_window,
        )


def _view_target(base: str, design: str, view: str) -> str:
    return f"{base}/_design/{design_name(design)}/_view/{quote_segment(view)}"


def _header_safe(value: str) -> str:
    # The Destination header is taken literally (not percent-decoded), and a "?" in it starts
    # the target's ``rev`` parameter: ids holding one cannot be copied to.
    doc_id = value.partition("?rev=")[0]
    if "?" in doc_id or any(ord(char) < 32 or ord(char) > 126 for char in value):
        raise InvalidInputError(f"the id {value!r} cannot be sent in a Destination header")
    return value
