"""View paging against a fake that behaves as CouchDB does (startkey_docid honoured), and as
pouchdb-server does (ignored): every row exactly once, also when rows change between pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest

import tor_async_couchdb as tac
from tor_async_couchdb._transport import MockRequest, MockTransport, Response

Rows = list[dict[str, Any]]


def view_server(rows: Rows, *, honours_docid: bool) -> Callable[[MockRequest], Response]:
    """Serve ``rows`` (sorted by key, then id) with startkey, startkey_docid, skip, limit."""

    def handler(request: MockRequest) -> Response:
        query = dict(parse_qsl(urlsplit(request.target).query))
        selected = list(rows)
        if "startkey" in query:
            start = orjson.loads(query["startkey"])
            docid = query.get("startkey_docid", "") if honours_docid else ""
            selected = [row for row in selected if (row["key"], row["id"]) >= (start, docid)]
        skip = int(query.get("skip", 0))
        limit = int(query.get("limit", 10**9))
        body = orjson.dumps({"rows": selected[skip : skip + limit]})
        return Response(200, {}, body)

    return handler


def rows_of(keys: str) -> Rows:
    return [{"id": f"d{n:02}", "key": key, "value": None} for n, key in enumerate(keys)]


@pytest.mark.parametrize("honours_docid", [True, False])
@pytest.mark.parametrize("page_size", [1, 2, 3, 5, 20])
async def test_every_row_once(honours_docid: bool, page_size: int) -> None:
    rows = rows_of("aaaaaaabbbcdddddddddde")
    handler = view_server(rows, honours_docid=honours_docid)
    async with tac.CouchDB("http://h:1", transport=MockTransport(handler)) as couch:
        view = couch.database("x").view("d", "v", page_size=page_size)
        seen = [row["id"] async for row in view]
    assert seen == [row["id"] for row in rows]


async def test_a_row_deleted_between_pages_loses_nothing_else() -> None:
    rows = rows_of("kkkkkkkkkk")
    handler = view_server(rows, honours_docid=True)
    seen = []
    async with tac.CouchDB("http://h:1", transport=MockTransport(handler)) as couch:
        async for row in couch.database("x").view("d", "v", page_size=3):
            seen.append(row["id"])
            if row["id"] == "d02":  # another client deletes the row the next page starts at
                rows[:] = [other for other in rows if other["id"] != "d03"]
    assert seen == [f"d{n:02}" for n in range(10) if n != 3]


async def test_a_server_that_repeats_itself_is_an_error_not_a_loop() -> None:
    def stuck(request: MockRequest) -> Response:
        return Response(200, {}, orjson.dumps({"rows": rows_of("aaaa")}))

    async with tac.CouchDB("http://h:1", transport=MockTransport(stuck)) as couch:
        view = couch.database("x").view("d", "v", page_size=2)
        with pytest.raises(tac.ProtocolError, match="no progress"):
            _ = [row async for row in view]
