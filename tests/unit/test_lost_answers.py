"""Writes whose answer was lost: the retry meets a 409 that is the first attempt's own echo.

A fake server (the only fault-injection fake here) commits a write and then loses its answer,
as a reset connection or a read timeout does. The client must report the write as saved, once,
never as a conflict, and never apply an ``update`` change twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

import tor_async_couchdb as tac
from tor_async_couchdb._transport import MockRequest, MockTransport, Response


class Counter(tac.Model, type_name="counter", version="1.0"):
    n: int = 0


class LossyCouch:
    """A tiny CouchDB stand-in for one database: documents, revisions, _bulk_docs."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.lose_next_answers = 0
        self.lost_error: Callable[..., tac.TransportError] = tac.ConnectionLost

    def __call__(self, request: MockRequest) -> Response:
        path = request.target.split("?", 1)[0]
        if path.endswith("/_bulk_docs"):
            return self._answer(self._bulk(orjson.loads(request.body or b"{}")["docs"]))
        if path.endswith("/_all_docs"):
            keys = orjson.loads(request.body or b"{}")["keys"]
            return Response(200, {}, orjson.dumps({"rows": [self._row(key) for key in keys]}))
        if path.count("/") == 1:  # the database itself: a single node (no "cluster" in it)
            return Response(200, {}, b'{"db_name": "db", "doc_count": 0}')
        doc_id = path.rsplit("/", 1)[1]
        if request.method in ("GET", "HEAD"):
            doc = self.docs.get(doc_id)
            if doc is None or doc.get("_deleted"):
                return Response(404, {}, b'{"error":"not_found","reason":"missing"}')
            return Response(200, {}, orjson.dumps(doc))
        if request.method == "DELETE":
            rev = request.target.split("rev=", 1)[1]
            status, answer = self._write({"_id": doc_id, "_rev": rev, "_deleted": True})
        else:
            status, answer = self._write(orjson.loads(request.body or b"{}"))
        if status != 201:
            return Response(status, {}, orjson.dumps(answer))
        return self._answer(answer)

    def _row(self, key: str) -> dict[str, Any]:
        doc = self.docs.get(key)
        if doc is None:
            return {"key": key, "error": "not_found"}
        value = {"rev": doc["_rev"], **({"deleted": True} if doc.get("_deleted") else {})}
        return {"id": key, "key": key, "value": value}

    def _answer(self, answer: Any) -> Response:
        if self.lose_next_answers:
            self.lose_next_answers -= 1
            raise self.lost_error("the answer was lost", method="PUT", url="http://fake")
        return Response(201, {}, orjson.dumps(answer))

    def _write(self, doc: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        current = self.docs.get(doc["_id"])
        current_rev = current["_rev"] if current and not current.get("_deleted") else None
        if doc.get("_rev") != current_rev:
            return 409, {
                "id": doc["_id"],
                "error": "conflict",
                "reason": "Document update conflict.",
            }
        generation = int(current["_rev"].split("-")[0]) + 1 if current else 1
        body = {k: v for k, v in doc.items() if k != "_rev"}
        digest = hashlib.md5(orjson.dumps(body), usedforsecurity=False).hexdigest()
        self.docs[doc["_id"]] = {**body, "_rev": f"{generation}-{digest}"}
        return 201, {"ok": True, "id": doc["_id"], "rev": self.docs[doc["_id"]]["_rev"]}

    def _bulk(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self._write(doc)[1] for doc in docs]


@pytest.fixture
async def lossy() -> AsyncIterator[tuple[LossyCouch, tac.Database]]:
    server = LossyCouch()
    no_wait = tac.RetryPolicy(backoff=0, max_backoff=0)
    transport = MockTransport(server)
    async with tac.CouchDB("http://127.0.0.1:5984", transport=transport, retry=no_wait) as couch:
        yield server, couch.database("lossy")


@pytest.mark.parametrize("lost", [tac.ConnectionLost, tac.ReadTimeout])
async def test_update_whose_answer_was_lost_is_applied_once(
    lossy: tuple[LossyCouch, tac.Database], lost: type[tac.TransportError]
) -> None:
    server, db = lossy
    await db.save(Counter(id="c", n=0))
    server.lost_error = lost
    server.lose_next_answers = 1
    after = await db.update(Counter, "c", lambda c: c.model_copy(update={"n": c.n + 1}))
    assert after.n == 1
    assert server.docs["c"]["n"] == 1
    assert after.rev == server.docs["c"]["_rev"]
    assert after.rev is not None
    assert after.rev.startswith("2-")


async def test_create_whose_answer_was_lost_is_saved_not_a_conflict(
    lossy: tuple[LossyCouch, tac.Database],
) -> None:
    server, db = lossy
    server.lose_next_answers = 1
    saved = await db.save(Counter(id="c2", n=5))
    assert saved.rev == server.docs["c2"]["_rev"]
    assert len(server.docs) == 1


async def test_a_real_conflict_after_a_lost_answer_is_still_a_conflict(
    lossy: tuple[LossyCouch, tac.Database],
) -> None:
    server, db = lossy
    first = await db.put_doc({"_id": "d", "v": 1})
    await db.put_doc({"_id": "d", "_rev": first["rev"], "v": 2})  # someone else's change
    server.lose_next_answers = 1  # nothing commits, the retry still gets the 409
    with pytest.raises(tac.Conflict):
        await db.put_doc({"_id": "d", "_rev": first["rev"], "v": 3})
    assert server.docs["d"]["v"] == 2


async def test_delete_whose_answer_was_lost_succeeds(
    lossy: tuple[LossyCouch, tac.Database],
) -> None:
    server, db = lossy
    saved = await db.put_doc({"_id": "gone", "v": 1})
    server.lose_next_answers = 1
    answer = await db.delete_doc("gone", saved["rev"])
    assert answer["ok"] is True
    assert server.docs["gone"]["_deleted"] is True


async def test_bulk_write_whose_answer_was_lost_reports_every_doc_saved(
    lossy: tuple[LossyCouch, tac.Database],
) -> None:
    server, db = lossy
    server.lose_next_answers = 1
    results = await db.bulk_docs([{"_id": f"b{n}", "n": n} for n in range(5)])
    assert [result.ok for result in results] == [True] * 5
    assert [result.rev for result in results] == [server.docs[f"b{n}"]["_rev"] for n in range(5)]


async def test_post_on_a_stale_idle_connection_is_not_repeated() -> None:
    # "Stale" (nothing came back on a reused connection) does not prove the server never read
    # the request: a POST that lets the server pick the id is not sent twice.
    sent: list[MockRequest] = []

    def server(request: MockRequest) -> Response:
        sent.append(request)
        error = tac.ConnectionLost("closed as idle", method="POST", url="http://fake")
        error.stale = True
        raise error

    no_wait = tac.RetryPolicy(backoff=0, max_backoff=0)
    async with tac.CouchDB("http://h:1", transport=MockTransport(server), retry=no_wait) as couch:
        with pytest.raises(tac.ConnectionLost):
            await couch.database("d").post_doc({"v": 1})
    assert len(sent) == 1


async def test_update_committed_before_a_stale_break_is_applied_once(
    lossy: tuple[LossyCouch, tac.Database],
) -> None:
    server, db = lossy
    await db.save(Counter(id="s", n=0))

    def stale(message: str, *, method: str, url: str) -> tac.ConnectionLost:
        error = tac.ConnectionLost(message, method=method, url=url)
        error.stale = True
        return error

    server.lost_error = stale
    server.lose_next_answers = 1
    after = await db.update(Counter, "s", lambda c: c.model_copy(update={"n": c.n + 1}))
    assert (after.n, server.docs["s"]["n"]) == (1, 1)
    assert server.docs["s"]["_rev"].startswith("2-")


async def test_bulk_delete_whose_answer_was_lost_reports_it_done(
    lossy: tuple[LossyCouch, tac.Database],
) -> None:
    server, db = lossy
    saved = await db.put_doc({"_id": "x", "v": 1})
    server.lose_next_answers = 1
    [result] = await db.bulk_docs([{"_id": "x", "_rev": saved["rev"], "_deleted": True}])
    assert result.ok
    assert result.rev == server.docs["x"]["_rev"]
    assert server.docs["x"]["_deleted"] is True
