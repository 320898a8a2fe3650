"""One database's API: documents, attachments, bulk operations, views, Mango, changes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple
from urllib.parse import quote

from ._codec import check_doc_id, doc_path, dumps, loads, query_string
from ._config import DEFAULT_PAGE_SIZE
from ._exceptions import (
    Conflict,
    HTTPStatusError,
    InvalidInputError,
    NotFound,
    PreconditionFailed,
    ProtocolError,
    TransportError,
    status_error,
)
from ._store import ModelMethods

if TYPE_CHECKING:
    from ._client import CouchDB

__all__ = ["BulkResult", "Database"]

logger = logging.getLogger("tor_async_couchdb")

_BULK_ERROR_STATUS = {
    "conflict": 409,
    "forbidden": 403,
    "unauthorized": 401,
    "not_found": 404,
    "bad_request": 400,
    "doc_validation": 400,
}


class BulkResult(NamedTuple):
    """The outcome of one document of a ``_bulk_docs`` request: saved (``rev`` set), or
    ``error`` (a :class:`HTTPStatusError`, e.g. :class:`Conflict`) and nothing written.

    (A named tuple: a bulk answer makes thousands, and a tuple is the cheapest immutable
    record to build, measured at a third of a frozen dataclass's cost.)
    """

    id: str
    rev: str | None
    error: HTTPStatusError | None = None

    @property
    def ok(self) -> bool:
        """Whether this document was saved."""
        return self.error is None


_new_tuple = tuple.__new__


def _view_params(
    *,
    key: Any,
    startkey: Any,
    endkey: Any,
    startkey_docid: str | None,
    endkey_docid: str | None,
    inclusive_end: bool,
    descending: bool,
    include_docs: bool,
    conflicts: bool,
    update: Literal["true", "false", "lazy"] | None,
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if key is not _MISSING:
        params["key"] = key
    if startkey is not _MISSING:
        params["startkey"] = startkey
    if endkey is not _MISSING:
        params["endkey"] = endkey
    params["startkey_docid"] = startkey_docid
    params["endkey_docid"] = endkey_docid
    if not inclusive_end:
        params["inclusive_end"] = False
    if descending:
        params["descending"] = True
    if include_docs:
        params["include_docs"] = True
    if conflicts:
        params["conflicts"] = True
    if update is not None:
        params["update"] = update
        if update != "true":
            # pouchdb-server and CouchDB 1.x/2.x know only the older ``stale`` parameter.
            params["stale"] = "ok" if update == "false" else "update_after"
    if extra:
        params.update(extra)
    return params


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Any = _Missing()


class Database(ModelMethods):
    """A handle of one database on a :class:`CouchDB` server; made by ``couch.database(name)``.

    Making a handle does no I/O; :meth:`create` makes the database. Every method raises
    :class:`TransportError` or :class:`HTTPStatusError` subclasses for failures, and
    :class:`InvalidInputError` subclasses, before any request, for bad input.
    """

    __slots__ = ("_base", "_couch", "name")

    def __init__(self, couch: CouchDB, name: str) -> None:
        self._couch = couch
        self.name = name
        self._base = "/" + doc_path(name) if name.startswith("_") else "/" + _quote_db(name)

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
            await self._couch._json("PUT", target, safe=True)
        except PreconditionFailed:
            if exists_ok:
                return False
            raise
        return True

    async def delete(self, *, missing_ok: bool = False) -> bool:
        """Delete the database. Returns False if it was missing and ``missing_ok``."""
        try:
            await self._couch._json("DELETE", self._base, safe=True)
        except NotFound:
            if missing_ok:
                return False
            raise
        return True

    async def exists(self) -> bool:
        """Whether the database exists (``HEAD /db``)."""
        response = await self._couch._send("HEAD", self._base)
        if response.status == 404:
            return False
        if response.status >= 300:
            raise self._couch._status_error("HEAD", self._base, response, None)
        return True

    async def info(self) -> dict[str, Any]:
        """``GET /db``: document counts, sizes and the update sequence (an opaque value)."""
        answer: dict[str, Any] = await self._couch._json("GET", self._base)
        return answer

    async def security(self) -> dict[str, Any]:
        """``GET /db/_security``: the admins and members objects."""
        answer: dict[str, Any] = await self._couch._json("GET", self._base + "/_security")
        return answer

    async def set_security(
        self,
        *,
        admins: Mapping[str, Sequence[str]] | None = None,
        members: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """``PUT /db/_security`` with ``{"names": [...], "roles": [...]}`` objects."""
        body = {"admins": dict(admins or {}), "members": dict(members or {})}
        await self._couch._json(
            "PUT", self._base + "/_security", dumps(body, what="security object"), safe=True
        )

    async def compact(self, design: str | None = None) -> None:
        """Start compaction of the database, or of one design document's views."""
        target = self._base + "/_compact" + (f"/{_design_name(design)}" if design else "")
        await self._couch._json("POST", target, b"{}", safe=True)

    async def view_cleanup(self) -> None:
        """Remove index files no design document uses any more."""
        await self._couch._json("POST", self._base + "/_view_cleanup", b"{}", safe=True)

    async def design_info(self, design: str) -> dict[str, Any]:
        """``GET /db/_design/NAME/_info``: the view index's size and state."""
        target = f"{self._base}/_design/{_design_name(design)}/_info"
        answer: dict[str, Any] = await self._couch._json("GET", target)
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
    ) -> dict[str, Any]:
        """``GET /db/{id}``: the document. Raises :class:`NotFound`."""
        target = self._doc_target(doc_id)
        if rev or revs_info or conflicts or deleted_conflicts or attachments:
            target += query_string(
                {
                    "rev": rev,
                    "revs_info": revs_info or None,
                    "conflicts": conflicts or None,
                    "deleted_conflicts": deleted_conflicts or None,
                    "attachments": attachments or None,
                }
            )
        doc: dict[str, Any] = await self._couch._json("GET", target, doc_id=doc_id)
        return doc

    async def get_open_revs(
        self, doc_id: str, revs: Sequence[str] | Literal["all"] = "all"
    ) -> list[dict[str, Any]]:
        """``GET /db/{id}?open_revs=...``: the leaf revisions (``{"ok": doc}`` or
        ``{"missing": rev}`` each), as replication conflicts are inspected."""
        target = self._doc_target(doc_id) + query_string(
            {"open_revs": revs if revs == "all" else list(revs)}
        )
        answer: list[dict[str, Any]] = await self._couch._json("GET", target, doc_id=doc_id)
        return answer

    async def head_doc(self, doc_id: str) -> str | None:
        """The current revision of a document, or None if it does not exist (``HEAD``)."""
        target = self._doc_target(doc_id)
        response = await self._couch._send("HEAD", target)
        if response.status == 404:
            return None
        if response.status >= 300:
            raise self._couch._status_error("HEAD", target, response, doc_id)
        etag = response.headers.get("etag", "")
        if etag.startswith('"') and not etag.startswith("W/"):
            return etag.strip('"')
        # pouchdb-server's ETag is a body hash, not the revision: ask for the document.
        return str((await self.get_doc(doc_id))["_rev"])

    async def put_doc(self, doc: Mapping[str, Any], *, batch: bool = False) -> dict[str, Any]:
        """``PUT /db/{doc["_id"]}``: create (no ``_rev``) or update a document.

        Returns ``{"ok", "id", "rev"}``; ``doc`` itself is not changed. Raises
        :class:`Conflict` if ``_rev`` is not the latest, :class:`InvalidInputError` if the
        document has no ``_id`` or is not JSON.
        """
        doc_id = doc.get("_id")
        if doc_id is None:
            raise InvalidInputError("put_doc needs a document with an '_id' (or use post_doc)")
        target = self._doc_target(doc_id) + ("?batch=ok" if batch else "")
        body = dumps(doc, what=f"document {doc_id!r}")
        response, maybe_done = await self._couch._exchange("PUT", target, body, safe=True)
        if response.status == 409 and maybe_done:
            # A retry after a lost answer: the 409 may be this write's own first attempt.
            echo = await self._saved_echo(doc_id, doc)
            if echo is not None:
                return echo
        if response.status >= 300:
            raise self._couch._status_error("PUT", target, response, doc_id)
        answer: dict[str, Any] = loads(response.body, method="PUT", url=self._couch._url_of(target))
        return answer

    async def _saved_echo(self, doc_id: str, doc: Mapping[str, Any]) -> dict[str, Any] | None:
        """``{"ok", "id", "rev"}`` if the current revision of ``doc_id`` is exactly ``doc``
        written on top of the revision it names (so an earlier attempt of it was saved)."""
        sent_rev = doc.get("_rev")
        generation = int(str(sent_rev).split("-", 1)[0]) if sent_rev else 0
        if doc.get("_deleted"):
            return await self._deleted_echo(doc_id, generation)
        try:
            current = await self.get_doc(doc_id)
        except NotFound:
            return None
        rev = str(current.pop("_rev", ""))
        if not rev.startswith(f"{generation + 1}-"):
            return None
        expected = loads(dumps({k: v for k, v in doc.items() if k != "_rev"}), method="", url="")
        return {"ok": True, "id": doc_id, "rev": rev} if current == expected else None

    async def _deleted_echo(self, doc_id: str, generation: int) -> dict[str, Any] | None:
        # A deleted document answers 404 to GET; _all_docs still names its deleting revision.
        async for row in self.all_docs(keys=[doc_id]):
            value = row.get("value") or {}
            rev = str(value.get("rev", ""))
            if value.get("deleted") and rev.startswith(f"{generation + 1}-"):
                return {"ok": True, "id": doc_id, "rev": rev}
        return None

    async def post_doc(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /db``: create a document; the server picks the id if it has none. Not
        retried after it may have reached the server (it could create a duplicate)."""
        body = dumps(doc, what="document")
        answer: dict[str, Any] = await self._couch._json(
            "POST", self._base, body, safe="_id" in doc, doc_id=doc.get("_id")
        )
        return answer

    async def delete_doc(self, doc_id: str, rev: str) -> dict[str, Any]:
        """``DELETE /db/{id}?rev=...``. Raises :class:`Conflict`, :class:`NotFound`."""
        if not rev:
            raise InvalidInputError(f"deleting document {doc_id!r} needs its current rev")
        target = self._doc_target(doc_id) + query_string({"rev": rev})
        response, maybe_done = await self._couch._exchange("DELETE", target, safe=True)
        if response.status in (404, 409) and maybe_done and await self.head_doc(doc_id) is None:
            # A retry after a lost answer, and the document is gone: the first attempt did it.
            return {"ok": True, "id": doc_id, "rev": None}
        if response.status >= 300:
            raise self._couch._status_error("DELETE", target, response, doc_id)
        answer: dict[str, Any] = loads(
            response.body, method="DELETE", url=self._couch._url_of(target)
        )
        return answer

    async def copy_doc(
        self, source_id: str, target_id: str, *, target_rev: str | None = None
    ) -> dict[str, Any]:
        """``COPY /db/{source}`` to ``target_id`` (``target_rev`` to overwrite a document)."""
        destination = target_id + (f"?rev={target_rev}" if target_rev else "")
        check_doc_id(target_id)
        target = self._doc_target(source_id)
        response = await self._couch._send(
            "COPY", target, headers=[("Destination", _header_safe(destination))], safe=True
        )
        if response.status >= 300:
            raise self._couch._status_error("COPY", target, response, source_id)
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
        response = await self._couch._send(
            "PUT", target, bytes(data), headers=[("Content-Type", content_type)], safe=True
        )
        if response.status >= 300:
            raise self._couch._status_error("PUT", target, response, doc_id)
        answer: dict[str, Any] = loads(response.body, method="PUT", url=target)
        return answer

    async def get_attachment(self, doc_id: str, name: str) -> tuple[bytes, str]:
        """``GET /db/{id}/{name}``: the attachment's bytes and content type."""
        target = self._attachment_target(doc_id, name)
        response = await self._couch._send("GET", target, headers=[("Accept", "*/*")])
        if response.status >= 300:
            raise self._couch._status_error("GET", target, response, doc_id)
        return response.body, response.headers.get("content-type", "application/octet-stream")

    async def delete_attachment(self, doc_id: str, name: str, rev: str) -> dict[str, Any]:
        """``DELETE /db/{id}/{name}?rev=...``."""
        target = self._attachment_target(doc_id, name) + query_string({"rev": rev})
        answer: dict[str, Any] = await self._couch._json("DELETE", target, doc_id=doc_id, safe=True)
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
        ids = [doc.get("_id") for doc in docs]
        seen: set[str] = set()
        for doc_id in ids:
            if doc_id is None:
                continue
            if type(doc_id) is not str:
                raise InvalidInputError("every _id in a bulk request must be a str")
            if doc_id in seen:
                raise InvalidInputError(f"a bulk request holds _id {doc_id!r} twice")
            seen.add(doc_id)
        body: dict[str, Any] = {"docs": docs}
        if not new_edits:
            body["new_edits"] = False
        encoded = dumps(body, what="bulk request")
        target = self._base + "/_bulk_docs"
        response, maybe_done = await self._couch._exchange(
            "POST", target, encoded, safe=None not in ids
        )
        if response.status >= 300:
            raise self._couch._status_error("POST", target, response, None)
        answer = loads(response.body, method="POST", url=self._couch._url_of(target))
        if not new_edits:
            return self._match_replicated(ids, answer)
        results = self._match_bulk(ids, answer)
        if maybe_done:
            results = await self._settle_echoes(docs, results)
        return results

    def _match_replicated(self, ids: list[str | None], answer: Any) -> list[BulkResult]:
        # With new_edits=false CouchDB lists only the documents that failed.
        url = self._couch._url_of(self._base + "/_bulk_docs")
        if not isinstance(answer, list):
            raise ProtocolError("a _bulk_docs answer must be a list", method="POST", url=url)
        failed = {result.id: result for result in (_bulk_result(item, url) for item in answer)}
        return [failed.get(str(doc_id), BulkResult(str(doc_id), None)) for doc_id in ids]

    async def _settle_echoes(
        self, docs: Sequence[Mapping[str, Any]], results: list[BulkResult]
    ) -> list[BulkResult]:
        """After a retry of a lost answer, turn conflicts that are the echo of the first
        attempt's own writes into the successes they were."""
        settled = list(results)
        for index, (doc, result) in enumerate(zip(docs, results, strict=True)):
            if isinstance(result.error, Conflict):
                echo = await self._saved_echo(result.id, doc)
                if echo is not None:
                    settled[index] = BulkResult(result.id, echo["rev"])
        return settled

    def _match_bulk(self, ids: list[str | None], answer: Any) -> list[BulkResult]:
        url = self._couch._url_of(self._base + "/_bulk_docs")
        if not isinstance(answer, list) or len(answer) != len(ids):
            raise ProtocolError(
                "a _bulk_docs answer must list one result per document", method="POST", url=url
            )
        # The usual case, and CouchDB's promise: every document saved, in request order. One
        # pass builds those results; anything else takes the general path below.
        results: list[BulkResult] = []
        append = results.append
        for item, doc_id in zip(answer, ids, strict=True):
            if type(item) is not dict or item.get("id") != doc_id or doc_id is None:
                break
            if "error" in item:
                break
            # tuple.__new__ directly: a third cheaper than the named tuple's own __new__.
            append(_new_tuple(BulkResult, (doc_id, item.get("rev"), None)))
        else:
            return results
        results = [_bulk_result(item, url) for item in answer]
        if all(
            doc_id is None or result.id == doc_id
            for result, doc_id in zip(results, ids, strict=True)
        ):
            return results
        # Some servers (pouchdb-server) reorder neighbours: match by id. Documents sent without
        # an id can only be matched by their order among the unnamed results.
        named = {doc_id for doc_id in ids if doc_id is not None}
        by_id = {result.id: result for result in results if result.id in named}
        unnamed = iter([result for result in results if result.id not in named])
        matched = []
        for doc_id in ids:
            result = by_id.get(doc_id) if doc_id is not None else next(unnamed, None)
            if result is None:
                raise ProtocolError(
                    f"the _bulk_docs answer has no result for document {doc_id!r}",
                    method="POST",
                    url=url,
                )
            matched.append(result)
        return matched

    async def bulk_get(self, docs: Sequence[tuple[str, str | None]]) -> list[dict[str, Any]]:
        """``POST /db/_bulk_get`` for ``(id, rev or None)`` pairs: CouchDB's answer items
        (``{"id", "docs": [{"ok": doc} | {"error": ...}]}``), in request order."""
        items = [
            {"id": check_doc_id(doc_id), **({"rev": rev} if rev else {})} for doc_id, rev in docs
        ]
        answer = await self._couch._json(
            "POST", self._base + "/_bulk_get", dumps({"docs": items}), safe=True
        )
        results: list[dict[str, Any]] = answer["results"]
        return results

    # -- _all_docs and views -----------------------------------------------------------------

    def all_docs(
        self,
        *,
        keys: Sequence[str] | None = None,
        startkey: Any = _MISSING,
        endkey: Any = _MISSING,
        inclusive_end: bool = True,
        descending: bool = False,
        include_docs: bool = False,
        conflicts: bool = False,
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> AsyncIterator[dict[str, Any]]:
        """The rows of ``_all_docs`` (``id``, ``key``, ``value``, ``doc`` with include_docs),
        paged by key in bounded memory: at most ``page_size`` rows are held at once."""
        return self._rows(
            self._base + "/_all_docs",
            keys=keys,
            params=_view_params(
                key=_MISSING,
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
        key: Any = _MISSING,
        keys: Sequence[Any] | None = None,
        startkey: Any = _MISSING,
        endkey: Any = _MISSING,
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
        params = _view_params(
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
        target = f"{self._base}/_design/{_design_name(design)}/_view/{_quote_db(view)}"
        reduced = bool(reduce is not False and (group or group_level is not None or reduce))
        return self._rows(
            target, keys=keys, params=params, limit=limit, page_size=page_size, reduced=reduced
        )

    async def _rows(
        self,
        target: str,
        *,
        keys: Sequence[Any] | None,
        params: dict[str, Any],
        limit: int | None,
        page_size: int,
        reduced: bool,
    ) -> AsyncIterator[dict[str, Any]]:
        if page_size < 1:
            raise InvalidInputError("page_size must be at least 1")
        if limit is not None and limit < 0:
            raise InvalidInputError("limit must be 0 or more")
        if keys is not None:
            async for row in self._rows_by_keys(target, list(keys), params, limit, page_size):
                yield row
            return
        remaining = limit
        # Rows already yielded that share the key the next page starts at. Where the server
        # ignores startkey_docid (pouchdb-server does), they are skipped with ``skip``: only
        # ever within one key, the one case key paging cannot express on such a server.
        seen_at_start = 0
        run_first_id: Any = None  # the first row yielded of that key
        docid_ignored: bool | None = None if not reduced else False
        following: dict[str, Any] | None = None
        while remaining is None or remaining > 0:
            wanted = page_size if remaining is None else min(page_size, remaining)
            # The extra row tells where the next page starts; the last page needs none.
            extra = 0 if remaining is not None and remaining <= page_size else 1
            query = {**params, "limit": wanted + extra}
            if docid_ignored and seen_at_start:
                query["skip"] = seen_at_start
            page = await self._page(target, query)
            if docid_ignored is None and seen_at_start and following is not None and page:
                # The first page that can tell. A server that ignores startkey_docid restarts
                # at the key's first row, one already yielded; one that honours it starts at
                # the row asked for, or after it if that row changed meanwhile.
                docid_ignored = page[0].get("id") == run_first_id
                if docid_ignored:
                    page = await self._page(target, {**query, "skip": seen_at_start})
            rows = page[:wanted]
            for row in rows:
                yield row
            if remaining is not None:
                remaining -= len(rows)
            if not extra or len(page) <= wanted:
                return
            # The extra row is where the next page starts: by key and, for map rows, by id,
            # so rows sharing a key are neither skipped nor repeated.
            previous, following = following, page[wanted]
            key = following["key"]
            if previous is not None and (previous["key"], previous.get("id")) == (
                key,
                following.get("id"),
            ):
                raise ProtocolError(
                    "view paging made no progress (the server repeats the same page)",
                    method="GET",
                    url=self._couch._url_of(target),
                )
            if docid_ignored is not False:
                same = 0
                for row in reversed(rows):
                    if row["key"] != key:
                        break
                    same += 1
                if same == len(rows) and previous is not None and previous["key"] == key:
                    seen_at_start += same  # the key's rows go on from an earlier page
                else:
                    seen_at_start = same
                    run_first_id = rows[len(rows) - same]["id"] if same else None
            params = dict(params)
            if "key" in params:
                # An exact-key query becomes the range [key, key] so paging can move through it.
                params["endkey"] = params.pop("key")
            params["startkey"] = key
            if not reduced:
                params["startkey_docid"] = following["id"]
            del page, rows

    async def _rows_by_keys(
        self,
        target: str,
        keys: list[Any],
        params: dict[str, Any],
        limit: int | None,
        page_size: int,
    ) -> AsyncIterator[dict[str, Any]]:
        # Keys go in the body (POST), page_size keys per request, so no URL grows too long and
        # no answer holds more than about a page (one row per key, for unique keys).
        remaining = limit
        for start in range(0, len(keys), page_size):
            chunk = keys[start : start + page_size]
            query = dict(params)
            if remaining is not None:
                query["limit"] = remaining
            rows = await self._page(target, query, body={"keys": chunk})
            for row in rows:
                yield row
            if remaining is not None:
                remaining -= len(rows)
                if remaining <= 0:
                    return

    async def _page(
        self, target: str, params: Mapping[str, Any], body: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        full = target + query_string(params)
        method = "GET" if body is None else "POST"
        encoded = None if body is None else dumps(body, what="keys")
        answer = await self._couch._json(method, full, encoded, safe=True)
        rows = answer.get("rows") if isinstance(answer, dict) else None
        if not isinstance(rows, list):
            url = self._couch._url_of(full)
            raise ProtocolError("a view answer must hold a 'rows' list", method=method, url=url)
        return rows

    # -- Mango -------------------------------------------------------------------------------

    async def find(
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
        if page_size < 1:
            raise InvalidInputError("page_size must be at least 1")
        query: dict[str, Any] = {"selector": dict(selector)}
        if fields is not None:
            query["fields"] = list(fields)
        if sort is not None:
            query["sort"] = list(sort)
        if use_index is not None:
            query["use_index"] = use_index
        if conflicts:
            query["conflicts"] = True
        remaining = limit
        bookmark: str | None = None
        last_id: str | None = None
        by_id = False
        while remaining is None or remaining > 0:
            wanted = page_size if remaining is None else min(page_size, remaining)
            page_query = {**query, "limit": wanted}
            if bookmark is not None:
                page_query["bookmark"] = bookmark
            elif by_id:
                if last_id is not None:
                    page_query["selector"] = {
                        "$and": [query["selector"], {"_id": {"$gt": last_id}}]
                    }
                page_query["sort"] = [{"_id": "asc"}]
            docs, bookmark = await self._find_page(page_query)
            if bookmark is None and not by_id and len(docs) == wanted and remaining != wanted:
                # No bookmark and maybe more to come: this page's order (the index's) cannot be
                # continued. Read again from the start in _id order, which can.
                self._check_id_paging(sort, use_index, fields)
                by_id = True
                continue
            for doc in docs:
                yield doc
            if remaining is not None:
                remaining -= len(docs)
            if len(docs) < wanted:
                return
            if by_id:
                last_id = docs[-1]["_id"]

    async def _find_page(self, query: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
        target = self._base + "/_find"
        answer = await self._couch._json(
            "POST", target, dumps(query, what="Mango query"), safe=True
        )
        docs = answer.get("docs") if isinstance(answer, dict) else None
        if not isinstance(docs, list):
            raise ProtocolError(
                "a _find answer must hold a 'docs' list",
                method="POST",
                url=self._couch._url_of(target),
            )
        return docs, answer.get("bookmark") or None

    @staticmethod
    def _check_id_paging(
        sort: Sequence[Any] | None, use_index: object, fields: Sequence[str] | None
    ) -> None:
        if sort or use_index is not None:
            raise InvalidInputError(
                "this server gives no _find bookmark, so a query with sort or use_index cannot "
                "be paged: give a limit of at most page_size"
            )
        if fields is not None and "_id" not in fields:
            raise InvalidInputError("paging _find on this server needs '_id' in fields")

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
        answer: dict[str, Any] = await self._couch._json(
            "POST", self._base + "/_index", dumps(body, what="index"), safe=True
        )
        return answer

    async def indexes(self) -> list[dict[str, Any]]:
        """``GET /db/_index``: every Mango index."""
        answer = await self._couch._json("GET", self._base + "/_index")
        indexes: list[dict[str, Any]] = answer["indexes"]
        return indexes

    async def delete_index(self, design: str, name: str) -> None:
        """``DELETE /db/_index/{design}/json/{name}`` (design with or without ``_design/``)."""
        design_id = design if design.startswith("_design/") else f"_design/{design}"
        # The encoded-slash form is the one both CouchDB and pouchdb-server accept.
        target = f"{self._base}/_index/{_quote_db(design_id)}/json/{_quote_db(name)}"
        await self._couch._json("DELETE", target, safe=True)

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
        query = self._changes_query(
            since=since,
            limit=limit,
            include_docs=include_docs,
            style=style,
            conflicts=conflicts,
            descending=descending,
            doc_ids=doc_ids,
            filter_name=filter,
            selector=selector,
        )
        if longpoll:
            query["feed"] = "longpoll"
            if timeout is not None:
                query["timeout"] = int(timeout * 1000)
            else:
                query["heartbeat"] = int(heartbeat * 1000)
        query.update(params or {})
        body = self._changes_body(doc_ids, selector)
        method = "POST" if body is not None else "GET"
        target = self._base + "/_changes" + query_string(query)
        if longpoll:
            answer = await self._wait_for_changes(method, target, body, timeout, heartbeat)
        else:
            answer = await self._couch._json(method, target, body, safe=True)
        results: list[dict[str, Any]] = answer["results"]
        last = answer.get("last_seq")
        if last is None:
            last = results[-1]["seq"] if results else since
        return results, str(last)

    async def _wait_for_changes(
        self, method: str, target: str, body: bytes | None, wait: float | None, beat: float
    ) -> Any:
        # A long poll outlives the client's read timeout on purpose: bound the silence by the
        # heartbeat (or the server's own timeout) instead.
        silence = (wait + 10.0) if wait is not None else beat * 3
        async with self._couch._stream(method, target, body, read_timeout=silence) as stream:
            raw = await stream.read()
        return loads(raw, method=method, url=self._couch._url_of(target))

    def _changes_query(
        self,
        *,
        since: str | int,
        limit: int | None,
        include_docs: bool,
        style: str,
        conflicts: bool,
        descending: bool,
        doc_ids: Sequence[str] | None,
        filter_name: str | None,
        selector: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        query: dict[str, Any] = {"since": str(since)}
        if limit is not None:
            query["limit"] = limit
        if include_docs:
            query["include_docs"] = True
        if style != "main_only":
            query["style"] = style
        if conflicts:
            query["conflicts"] = True
        if descending:
            query["descending"] = True
        if doc_ids is not None:
            query["filter"] = "_doc_ids"
        elif selector is not None:
            query["filter"] = "_selector"
        elif filter_name is not None:
            query["filter"] = filter_name
        return query

    @staticmethod
    def _changes_body(
        doc_ids: Sequence[str] | None, selector: Mapping[str, Any] | None
    ) -> bytes | None:
        if doc_ids is not None:
            return dumps({"doc_ids": [check_doc_id(doc_id) for doc_id in doc_ids]})
        if selector is not None:
            return dumps({"selector": dict(selector)}, what="selector")
        return None

    async def feed(
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
    ) -> AsyncGenerator[dict[str, Any], None]:
        """A continuous ``_changes`` feed as an endless async iterator of changes.

        The server sends an empty line every ``heartbeat`` seconds; silence for three
        heartbeats counts as a dead connection. After a dropped connection or a transient
        error the feed reconnects (with capped exponential backoff) and resumes from the last
        sequence it yielded, so the consumer sees every change exactly once. Stop it with
        ``break`` or by cancelling the task; HTTP errors other than 5xx/429 end it.
        """
        query = self._changes_query(
            since=since,
            limit=None,
            include_docs=include_docs,
            style=style,
            conflicts=conflicts,
            descending=False,
            doc_ids=doc_ids,
            filter_name=filter,
            selector=selector,
        )
        if query["since"] == "now":
            # Pin "now" to a sequence: resuming from "now" after a drop would skip the changes
            # made while the feed reconnected.
            query["since"] = str((await self.info())["update_seq"])
        query["feed"] = "continuous"
        query["heartbeat"] = int(heartbeat * 1000)
        body = self._changes_body(doc_ids, selector)
        method = "POST" if body is not None else "GET"
        failures = 0
        while True:
            target = self._base + "/_changes" + query_string(query)
            try:
                async with self._couch._stream(
                    method, target, body, read_timeout=heartbeat * 3
                ) as stream:
                    async for line in stream.aiter_lines():
                        if not line.strip():
                            continue
                        change = loads(line, method=method, url=self._couch._url_of(target))
                        if "seq" not in change:
                            continue  # the closing {"last_seq": ...} of a feed that ended
                        failures = 0
                        query["since"] = str(change["seq"])
                        yield change
            except (TransportError, HTTPStatusError) as error:
                if isinstance(error, HTTPStatusError) and not (
                    error.status >= 500 or error.status == 429
                ):
                    raise
                failures += 1
                delay = min(max_reconnect_delay, reconnect_delay * 2 ** (failures - 1))
                logger.warning(
                    "changes feed of %s interrupted (%s); resuming from %s in %.1f s",
                    self.name,
                    error,
                    query["since"],
                    delay,
                )
                await asyncio.sleep(delay)
            else:
                # The server ended the feed (it should not): resume where it left off.
                failures += 1
                await asyncio.sleep(min(max_reconnect_delay, reconnect_delay))


def _bulk_result(item: Any, url: str) -> BulkResult:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        raise ProtocolError("a _bulk_docs result has no id", method="POST", url=url)
    doc_id = item["id"]
    error = item.get("error")
    if error is None:
        return BulkResult(doc_id, item.get("rev"))
    status = _BULK_ERROR_STATUS.get(str(error), 500)
    exception = status_error(
        status, method="POST", url=url, error=str(error), reason=item.get("reason"), doc_id=doc_id
    )
    return BulkResult(doc_id, None, exception)


def _design_name(design: str) -> str:
    """A design document's name, percent-encoded, with or without its ``_design/`` prefix."""
    return _quote_db(design.removeprefix("_design/"))


def _quote_db(name: str) -> str:
    return quote(name, safe="")


def _header_safe(value: str) -> str:
    # The Destination header is taken literally (not percent-decoded), and a "?" in it starts
    # the target's ``rev`` parameter: ids holding one cannot be copied to.
    doc_id = value.partition("?rev=")[0]
    if "?" in doc_id or any(ord(char) < 32 or ord(char) > 126 for char in value):
        raise InvalidInputError(f"the id {value!r} cannot be sent in a Destination header")
    return value
