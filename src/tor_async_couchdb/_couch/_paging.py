"""Paging of ``_all_docs``, views and ``_find``: async iterators holding one page at a time.

Rows are paged by key (``startkey`` and, for map rows, ``startkey_docid`` of the first row of the
next page), never by ``skip`` over the whole result, so memory stays bounded and late pages cost
as little as early ones. ``_find`` pages by ``bookmark``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from typing import Any, Literal

from .._config import DEFAULT_PAGE_SIZE, backoff_delay
from .._exceptions import InvalidInputError, ProtocolError, ServerError
from .._json import dumps
from ._engine import Engine
from ._urls import query_string

__all__ = ["MISSING", "map_view_params", "paged_find", "paged_pages", "paged_rows", "view_params"]

logger = logging.getLogger("tor_async_couchdb")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def view_params(
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
    if key is not MISSING:
        params["key"] = key
    if startkey is not MISSING:
        params["startkey"] = startkey
    if endkey is not MISSING:
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


def map_view_params(
    *,
    keys: Sequence[Any] | None = None,
    startkey: Any = MISSING,
    endkey: Any = MISSING,
    inclusive_end: bool = True,
    descending: bool = False,
    include_docs: bool = False,
) -> tuple[Sequence[Any] | None, dict[str, Any]]:
    """(keys, query parameters) of a map view read with these options (``Database.view_pages``)."""
    params = view_params(
        key=MISSING,
        startkey=startkey,
        endkey=endkey,
        startkey_docid=None,
        endkey_docid=None,
        inclusive_end=inclusive_end,
        descending=descending,
        include_docs=include_docs,
        conflicts=False,
        update=None,
        extra=None,
    )
    return keys, params


async def paged_rows(
    engine: Engine,
    target: str,
    *,
    keys: Sequence[Any] | None,
    params: dict[str, Any],
    limit: int | None,
    page_size: int,
    reduced: bool,
) -> AsyncIterator[dict[str, Any]]:
    """The rows of :func:`paged_pages`, one at a time."""
    pages = paged_pages(
        engine, target, keys=keys, params=params, limit=limit, page_size=page_size, reduced=reduced
    )
    try:
        async for page in pages:
            for row in page:
                yield row
    finally:
        await pages.aclose()


async def paged_pages(
    engine: Engine,
    target: str,
    *,
    keys: Sequence[Any] | None,
    params: dict[str, Any],
    limit: int | None,
    page_size: int,
    reduced: bool,
) -> AsyncGenerator[list[dict[str, Any]], None]:
    """The rows of a view or ``_all_docs``, a page (a list of at most ``page_size`` rows) at a
    time: for callers that handle a page at once (the store builds a page's models in one
    validation). The next page is asked for once the caller has taken this one."""
    if page_size < 1:
        raise InvalidInputError("page_size must be at least 1")
    if limit is not None and limit < 0:
        raise InvalidInputError("limit must be 0 or more")
    if keys is not None:
        async for page in _pages_by_keys(
            engine, target, list(keys), params, limit=limit, page_size=page_size
        ):
            yield page
        return
    # Every page from the same shard copies (CouchDB 3): pages read from copies that differ
    # for a moment after a write could skip or repeat rows. Servers without it ignore it.
    params = {**params, "stable": True}
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
        page = await _page(engine, target, query)
        if docid_ignored is None and seen_at_start and following is not None and page:
            # The first page that can tell. A server that ignores startkey_docid restarts
            # at the key's first row, one already yielded; one that honours it starts at
            # the row asked for, or after it if that row changed meanwhile.
            docid_ignored = page[0].get("id") == run_first_id
            if docid_ignored:
                page = await _page(engine, target, {**query, "skip": seen_at_start})
        rows = page[:wanted]
        yield rows
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
                url=engine.url_of(target),
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


async def _pages_by_keys(
    engine: Engine,
    target: str,
    keys: list[Any],
    params: dict[str, Any],
    *,
    limit: int | None,
    page_size: int,
) -> AsyncIterator[list[dict[str, Any]]]:
    # Keys go in the body (POST), page_size keys per request, so no URL grows too long and
    # no answer holds more than about a page (one row per key, for unique keys).
    remaining = limit
    for start in range(0, len(keys), page_size):
        chunk = keys[start : start + page_size]
        query = dict(params)
        if remaining is not None:
            query["limit"] = remaining
        rows = await _page(engine, target, query, body={"keys": chunk})
        if rows:
            yield rows
        if remaining is not None:
            remaining -= len(rows)
            if remaining <= 0:
                return


async def _page(
    engine: Engine, target: str, params: Mapping[str, Any], body: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    full = target + query_string(params)
    method = "GET" if body is None else "POST"
    encoded = None if body is None else dumps(body, what="keys")
    answer = await _waiting_for_the_index(engine, method, full, encoded)
    rows = answer.get("rows") if isinstance(answer, dict) else None
    if not isinstance(rows, list):
        url = engine.url_of(full)
        raise ProtocolError("a view answer must hold a 'rows' list", method=method, url=url)
    return rows


async def _waiting_for_the_index(
    engine: Engine, method: str, target: str, body: bytes | None
) -> Any:
    """``engine.json`` of a view read, waiting out a cluster's internal timeouts (a 500 with
    ``"error": "timeout"``, what a first read of a large view meets while its index is built)
    for up to the retry policy's ``index_build_wait`` seconds."""
    deadline = time.monotonic() + engine.retry.index_build_wait
    polls = 0
    while True:
        try:
            return await engine.json(method, target, body, safe=True)
        except ServerError as error:
            left = deadline - time.monotonic()
            if error.error != "timeout" or left <= 0:
                raise
            polls += 1
            delay = min(left, backoff_delay(polls, 0.5, 10.0, jitter=False))
            logger.info("view %s still building its index; asking again in %.1f s", target, delay)
            await asyncio.sleep(delay)


async def paged_find(
    engine: Engine,
    base: str,
    selector: Mapping[str, Any],
    *,
    fields: Sequence[str] | None = None,
    sort: Sequence[str | Mapping[str, str]] | None = None,
    limit: int | None = None,
    use_index: str | Sequence[str] | None = None,
    conflicts: bool = False,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> AsyncIterator[dict[str, Any]]:
    """What :meth:`Database.find` does (its docstring says how): the one copy of it."""
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
                page_query["selector"] = {"$and": [query["selector"], {"_id": {"$gt": last_id}}]}
            page_query["sort"] = [{"_id": "asc"}]
        docs, bookmark = await _find_page(engine, base, page_query)
        if bookmark is None and not by_id and len(docs) == wanted and remaining != wanted:
            # No bookmark and maybe more to come: this page's order (the index's) cannot be
            # continued. Read again from the start in _id order, which can.
            _check_id_paging(sort, use_index, fields)
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


async def _find_page(
    engine: Engine, base: str, query: dict[str, Any]
) -> tuple[list[dict[str, Any]], str | None]:
    target = base + "/_find"
    answer = await engine.json("POST", target, dumps(query, what="Mango query"), safe=True)
    docs = answer.get("docs") if isinstance(answer, dict) else None
    if not isinstance(docs, list):
        raise ProtocolError(
            "a _find answer must hold a 'docs' list",
            method="POST",
            url=engine.url_of(target),
        )
    return docs, answer.get("bookmark") or None


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
