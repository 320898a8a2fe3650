"""Writes under a cluster's quorum, and its internal timeouts, proven with the mock transport.

A small fake of a CouchDB 3 cluster's answers (the only fault-injection fake here): documents
with several leaves, ``202 Accepted``, ``open_revs=all`` with their history, and the 500
``{"error": "timeout"}`` of a busy cluster. The real cluster runs the same behaviour end to end
(``tests/integration/test_cluster.py`` with ``COUCHDB_URL`` naming a cluster node).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson
import pytest

import tor_async_couchdb as tac

WRITE_STAMP = "~write"
OLDEST = "0" * 32  # a write stamp older than any new_id()


class Counter(tac.Model, type_name="counter", version="1.0"):
    n: int = 0


def _rev(generation: int, body: dict[str, Any]) -> str:
    digest = hashlib.md5(orjson.dumps(body), usedforsecurity=False).hexdigest()
    return f"{generation}-{digest}"


class FakeCluster:
    """Documents as trees of revisions on ``copies`` copies (seen as one), answering writes
    with ``write_status`` (201 or 202); ``on_write`` may add a rival leaf as a write lands."""

    def __init__(self, copies: int = 3) -> None:
        self.copies = copies
        self.leaves: dict[str, dict[str, dict[str, Any]]] = {}  # id -> rev -> body
        self.history: dict[str, list[str]] = {}  # rev -> its ancestors, newest first
        self.write_status = 201
        self.on_write: Callable[[str, str], None] | None = None
        self.requests: list[tac.MockRequest] = []
        self.lose_writes = False

    def add_leaf(self, doc_id: str, parent: str | None, body: dict[str, Any]) -> str:
        generation = int(parent.split("-")[0]) + 1 if parent else 1
        rev = _rev(generation, {**body, "parent": parent})
        leaves = self.leaves.setdefault(doc_id, {})
        if parent is not None:
            leaves.pop(parent, None)
        leaves[rev] = {**body, "_id": doc_id, "_rev": rev}
        self.history[rev] = [rev, *(self.history[parent] if parent else [])]
        return rev

    def winner(self, doc_id: str) -> dict[str, Any] | None:
        live = [d for d in self.leaves.get(doc_id, {}).values() if not d.get("_deleted")]
        if not live:
            return None
        return max(live, key=lambda d: (int(d["_rev"].split("-")[0]), d["_rev"]))

    def __call__(self, request: tac.MockRequest) -> tac.Response:
        self.requests.append(request)
        path, _, query = request.target.partition("?")
        if path.count("/") == 1:
            cluster = {"q": 2, "n": self.copies, "w": 2, "r": 2}
            return _json(200, {"db_name": "db", "cluster": cluster})
        doc_id = path.rsplit("/", 1)[1]
        if request.method == "PUT":
            return self._write(doc_id, orjson.loads(request.body or b"{}"))
        if "open_revs=all" in query:
            return _json(200, [{"ok": self._with_history(d)} for d in self._leaves(doc_id)])
        doc = self.winner(doc_id)
        if doc is None:
            return _json(404, {"error": "not_found", "reason": "missing"})
        others = [d["_rev"] for d in self._leaves(doc_id) if d is not doc and not d.get("_deleted")]
        if "conflicts=true" in query and others:
            doc = {**doc, "_conflicts": others}
        return _json(200, doc)

    def _leaves(self, doc_id: str) -> list[dict[str, Any]]:
        return list(self.leaves.get(doc_id, {}).values())

    def _with_history(self, doc: dict[str, Any]) -> dict[str, Any]:
        revs = self.history[doc["_rev"]]
        start = int(revs[0].split("-")[0])
        return {**doc, "_revisions": {"start": start, "ids": [r.split("-")[1] for r in revs]}}

    def _write(self, doc_id: str, doc: dict[str, Any]) -> tac.Response:
        parent = doc.pop("_rev", None)
        leaves = self.leaves.get(doc_id, {})
        if parent is None and self.winner(doc_id) is not None:
            return _json(409, {"error": "conflict", "reason": "Document update conflict."})
        if parent is not None and parent not in leaves:
            return _json(409, {"error": "conflict", "reason": "Document update conflict."})
        if self.lose_writes:
            # A degraded cluster: the one copy that took it loses it again.
            return _json(202, {"ok": True, "id": doc_id, "rev": _rev(99, doc)})
        rev = self.add_leaf(doc_id, parent, doc)
        if self.on_write is not None and parent is not None and not doc.get("_deleted"):
            self.on_write(doc_id, parent)
        return _json(self.write_status, {"ok": True, "id": doc_id, "rev": rev})


def _json(status: int, body: Any) -> tac.Response:
    return tac.Response(status, {}, orjson.dumps(body))


def _client(handler: Callable[[tac.MockRequest], tac.Response]) -> tac.CouchDB:
    retry = tac.RetryPolicy(backoff=0.0, max_backoff=0.0, index_build_wait=0.5)
    return tac.CouchDB("http://couch.test:5984", transport=tac.MockTransport(handler), retry=retry)


# --- the raw layer says accepted vs committed ------------------------------------------------


async def test_a_202_put_is_accepted_and_a_201_committed() -> None:
    fake = FakeCluster()
    async with _client(fake) as couch:
        db = couch.database("db")
        fake.write_status = 202
        assert (await db.put_doc({"_id": "a"}))["accepted"] is True
        fake.write_status = 201
        assert (await db.put_doc({"_id": "b"}))["accepted"] is False


async def test_bulk_rows_say_accepted_vs_committed() -> None:
    answer = [
        {"ok": True, "id": "a", "rev": "1-a"},
        {"ok": True, "id": "b", "rev": "1-b", "accepted": True},
        {"id": "c", "error": "conflict", "reason": "Document update conflict."},
    ]

    def server(request: tac.MockRequest) -> tac.Response:
        return _json(201, answer)

    async with _client(server) as couch:
        results = await couch.database("db").bulk_docs([{"_id": i} for i in "abc"])
    assert [(r.ok, r.committed, r.accepted) for r in results] == [
        (True, True, False),
        (True, False, True),
        (False, False, False),
    ]


# --- a cluster's internal timeouts -----------------------------------------------------------

FABRIC_TIMEOUT = _json(500, {"error": "timeout", "reason": "The request could not be processed"})


async def test_a_read_meeting_a_fabric_timeout_is_retried() -> None:
    answers = [FABRIC_TIMEOUT, _json(200, {"_id": "a", "_rev": "1-a"})]

    def server(request: tac.MockRequest) -> tac.Response:
        return answers.pop(0)

    async with _client(server) as couch:
        assert (await couch.database("db").get_doc("a"))["_rev"] == "1-a"
        assert couch.stats().retries == 1


async def test_other_server_errors_and_unsafe_requests_are_not_retried() -> None:
    def server(request: tac.MockRequest) -> tac.Response:
        if request.method == "POST":
            return FABRIC_TIMEOUT
        return _json(500, {"error": "unknown_error", "reason": "badarg"})

    async with _client(server) as couch:
        db = couch.database("db")
        with pytest.raises(tac.ServerError):
            await db.get_doc("a")
        with pytest.raises(tac.ServerError):
            await db.post_doc({"n": 1})  # no id: repeating it could make two documents
        assert couch.stats().retries == 0


async def test_a_view_whose_index_is_building_is_waited_for() -> None:
    calls = 0

    def server(request: tac.MockRequest) -> tac.Response:
        nonlocal calls
        calls += 1
        if calls <= 6:  # more than the retry policy's own 3 retries
            return FABRIC_TIMEOUT
        return _json(200, {"rows": [{"id": "a", "key": 1, "value": None}]})

    async with _client(server) as couch:
        rows = [row async for row in couch.database("db").view("d", "v")]
    assert rows == [{"id": "a", "key": 1, "value": None}]


async def test_the_index_wait_is_bounded() -> None:
    def server(request: tac.MockRequest) -> tac.Response:
        return FABRIC_TIMEOUT

    async with _client(server) as couch:
        with pytest.raises(tac.ServerError) as caught:
            [row async for row in couch.database("db").view("d", "v")]
    assert caught.value.error == "timeout"


# --- the store confirms writes on a cluster --------------------------------------------------


async def _saved_counter(db: tac.Database, fake: FakeCluster) -> Counter:
    rev = fake.add_leaf("c", None, {"type": "counter_v1.0", "n": 0})
    return Counter(id="c", rev=rev, n=0)


async def test_a_write_that_is_the_only_leaf_is_confirmed() -> None:
    fake = FakeCluster()
    fake.write_status = 202
    async with _client(fake) as couch:
        db = couch.database("db")
        saved = await db.save(Counter(n=1))
    leaves = fake.leaves[str(saved.id)]
    assert list(leaves) == [saved.rev]
    assert leaves[str(saved.rev)][WRITE_STAMP]  # stamped: two writers never write one body
    assert any("open_revs=all" in r.target and "r=3" in r.target for r in fake.requests)


async def test_two_writers_of_the_same_body_make_two_revisions_and_one_withdraws() -> None:
    # The trap: without a stamp two increments of 0 to 1 on one parent are one revision, and
    # both writers "succeed". Here the second lands on a copy that still has the parent.
    fake = FakeCluster()
    async with _client(fake) as couch:
        db = couch.database("db")
        counter = await _saved_counter(db, fake)
        parent = fake.leaves["c"][str(counter.rev)]
        first = await db.save(counter.model_copy(update={"n": 1}))
        fake.leaves["c"][str(counter.rev)] = parent  # as a lagging copy still sees it
        fake.write_status = 202  # the quorum's copies have the first write: one copy takes it
        with pytest.raises(tac.WriteNotConfirmed):
            await db.save(counter.model_copy(update={"n": 1}))
    revs = [rev for rev in fake.leaves["c"] if rev != counter.rev]
    assert len(revs) == 2  # two revisions, not one
    live = [d for d in fake.leaves["c"].values() if not d.get("_deleted") and d["_rev"] in revs]
    assert [d["_rev"] for d in live] == [first.rev]  # the younger write withdrew itself


async def test_a_write_racing_an_older_one_is_withdrawn_and_the_update_retried() -> None:
    fake = FakeCluster()
    raced: list[str] = []

    def race(doc_id: str, parent: str) -> None:
        # Another writer's increment of the same parent, on the other copies, written first.
        if not raced:
            raced.append(_rival(fake, doc_id, parent))

    fake.on_write = race
    fake.write_status = 202
    async with _client(fake) as couch:
        db = couch.database("db")
        await _saved_counter(db, fake)
        updated = await db.update(Counter, "c", lambda c: c.model_copy(update={"n": c.n + 1}))
    assert updated.n == 2  # the rival's increment and this one: none lost
    live = [d for d in fake.leaves["c"].values() if not d.get("_deleted")]
    assert [d["n"] for d in live] == [2]
    withdrawn = [d for d in fake.leaves["c"].values() if d.get("_deleted")]
    assert len(withdrawn) == 1  # this writer's first, losing attempt


def _rival(fake: FakeCluster, doc_id: str, parent: str) -> str:
    body = {"type": "counter_v1.0", "n": 1, WRITE_STAMP: OLDEST}
    generation = int(parent.split("-", maxsplit=1)[0]) + 1
    rev = _rev(generation, {**body, "rival": True})
    fake.leaves[doc_id][rev] = {**body, "_id": doc_id, "_rev": rev}
    fake.history[rev] = [rev, *fake.history[parent]]
    return rev


async def test_a_cluster_whose_writes_never_hold_does_not_make_update_loop() -> None:
    fake = FakeCluster()
    async with _client(fake) as couch:
        db = couch.database("db")
        await _saved_counter(db, fake)
        fake.lose_writes = True
        policy = tac.ConflictRetry.immediate(4)
        with pytest.raises(tac.WriteNotConfirmed, match="write quorum") as caught:
            await db.update(
                Counter, "c", lambda c: c.model_copy(update={"n": c.n + 1}), retry=policy
            )
    assert isinstance(caught.value, tac.Conflict)
    assert caught.value.status == 202
    assert len([r for r in fake.requests if r.method == "PUT"]) == 4  # the policy's limit


async def test_save_many_reports_an_accepted_write_that_did_not_hold() -> None:
    fake = FakeCluster()

    def bulk(request: tac.MockRequest) -> tac.Response:
        if not request.target.endswith("/_bulk_docs"):
            return fake(request)
        docs = orjson.loads(request.body or b"{}")["docs"]
        kept = fake.add_leaf(docs[0]["_id"], None, docs[0])
        return _json(
            201,
            [
                {"ok": True, "id": docs[0]["_id"], "rev": kept, "accepted": True},
                {"ok": True, "id": docs[1]["_id"], "rev": "1-lost", "accepted": True},
            ],
        )

    async with _client(bulk) as couch:
        results = await couch.database("db").save_many([Counter(n=1), Counter(n=2)])
    assert results[0].ok
    assert isinstance(results[1].error, tac.WriteNotConfirmed)


# --- feeds: no change twice within a run -----------------------------------------------------


async def test_a_feed_resumed_after_a_reconnect_yields_no_change_twice() -> None:
    lines = [
        {"seq": "1-x", "id": "a", "changes": [{"rev": "1-a"}]},
        {"seq": "2-x", "id": "b", "changes": [{"rev": "1-b"}]},
    ]
    replay = [*lines, {"seq": "3-x", "id": "a", "changes": [{"rev": "2-a"}]}]
    streams = [lines, replay]

    def server(request: tac.MockRequest) -> tac.Response:
        if request.target.count("/") == 1 and "_changes" not in request.target:
            return _json(200, {"update_seq": "0-x"})
        body = b"".join(orjson.dumps(line) + b"\n" for line in streams.pop(0))
        return tac.Response(200, {}, body)

    seen = []
    async with _client(server) as couch:
        feed = couch.database("db").feed(heartbeat=0.5, reconnect_delay=0.0)
        async for change in feed:
            seen.append((change["id"], change["changes"][0]["rev"]))
            if len(seen) == 3:
                break
        await feed.aclose()
    assert seen == [("a", "1-a"), ("b", "1-b"), ("a", "2-a")]


# --- tokens that expire ----------------------------------------------------------------------


async def test_a_token_auth_fetches_once_and_again_after_a_401() -> None:
    tokens = iter(["t1", "t2"])
    fetched = []

    async def provider() -> str:
        fetched.append(token := next(tokens))
        return token

    def server(request: tac.MockRequest) -> tac.Response:
        if request.header("authorization") == "Bearer t1" and request.target == "/db/b":
            return _json(401, {"error": "unauthorized", "reason": "token expired"})
        return _json(200, {"_id": "x", "_rev": "1-x"})

    async with tac.CouchDB(
        "http://couch.test:5984",
        transport=tac.MockTransport(server),
        auth=tac.TokenAuth(provider),
    ) as couch:
        db = couch.database("db")
        await db.get_doc("a")
        await db.get_doc("a")
        await db.get_doc("b")  # a 401: a new token, the request repeated once
    assert fetched == ["t1", "t2"]
    assert "t1" not in repr(tac.TokenAuth(provider))


def test_a_token_auth_needs_a_callable() -> None:
    with pytest.raises(tac.InvalidInputError):
        tac.TokenAuth("not callable")  # type: ignore[arg-type]
