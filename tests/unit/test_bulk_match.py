"""The raw bulk path's checks of ids and its matching of answers (``_couch/_bulk.py``)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

import tor_async_couchdb as tac
from tor_async_couchdb._couch._bulk import BulkResult, check_bulk_ids, match_bulk
from tor_async_couchdb._transport import MockRequest, MockTransport, Response


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (["a", "b", "a"], "holds _id 'a' twice"),
        (["a", None, "b", None, "b"], "holds _id 'b' twice"),
        (["a", 1], "must be a str"),
        ([None, b"x"], "must be a str"),
    ],
)
def test_bulk_ids_are_str_and_distinct(ids: list[Any], message: str) -> None:
    with pytest.raises(tac.InvalidInputError, match=message):
        check_bulk_ids(ids)


def test_bulk_ids_may_leave_out_several_ids() -> None:
    ids = ["a", None, "b", None, None]
    assert check_bulk_ids(ids) is ids


def _ok(doc_id: str, rev: str = "1-x") -> dict[str, Any]:
    return {"ok": True, "id": doc_id, "rev": rev}


def test_every_saved_document_in_order() -> None:
    results = match_bulk(["a", "b"], [_ok("a"), _ok("b", "1-y")], "u")
    assert results == [BulkResult("a", "1-x"), BulkResult("b", "1-y")]
    assert all(type(result) is BulkResult for result in results)


@pytest.mark.parametrize(
    ("ids", "answer", "expected"),
    [
        # An error among the saved ones.
        (
            ["a", "b"],
            [_ok("a"), {"id": "b", "error": "conflict", "reason": "r"}],
            [("a", "1-x", None, False), ("b", None, tac.Conflict, False)],
        ),
        # A write a cluster only accepted.
        (
            ["a", "b"],
            [_ok("a"), {**_ok("b"), "accepted": True}],
            [("a", "1-x", None, False), ("b", "1-x", None, True)],
        ),
        # Reordered neighbours (pouchdb-server): matched by id.
        (
            ["a", "b"],
            [_ok("b", "1-b"), _ok("a", "1-a")],
            [("a", "1-a", None, False), ("b", "1-b", None, False)],
        ),
        # A document without id: matched by its place among the unnamed results.
        (
            ["a", None],
            [_ok("a"), _ok("srv", "1-s")],
            [("a", "1-x", None, False), ("srv", "1-s", None, False)],
        ),
    ],
)
def test_other_answers_take_the_general_path(
    ids: list[str | None], answer: list[Any], expected: list[tuple[Any, ...]]
) -> None:
    results = match_bulk(ids, answer, "u")
    for result, (doc_id, rev, error, accepted) in zip(results, expected, strict=True):
        assert (result.id, result.rev, result.accepted) == (doc_id, rev, accepted)
        assert (result.error is None) if error is None else isinstance(result.error, error)


@pytest.mark.parametrize(
    "answer",
    [
        [_ok("a")],  # one result short
        [_ok("a"), "not a dict"],
        [_ok("a"), {"rev": "1-x"}],  # no id
        [_ok("a"), _ok("c")],  # another document's result
    ],
)
def test_answers_that_do_not_fit_are_protocol_errors(answer: list[Any]) -> None:
    with pytest.raises(tac.ProtocolError):
        match_bulk(["a", "b"], answer, "u")


async def test_bad_ids_send_nothing() -> None:
    sent: list[MockRequest] = []

    def answer(request: MockRequest) -> Response:
        sent.append(request)
        return Response(201, {}, orjson.dumps([]))

    async with tac.CouchDB("http://127.0.0.1:5984", transport=MockTransport(answer)) as couch:
        db = couch.database("db")
        with pytest.raises(tac.InvalidInputError, match="twice"):
            await db.bulk_docs([{"_id": "a"}, {"_id": "a"}])
        with pytest.raises(tac.InvalidInputError, match="must be a str"):
            await db.bulk_docs([{"_id": "a"}, {"_id": 3}])
    assert sent == []
