"""Documents, attachments and bulk operations against the real server."""

from __future__ import annotations

import math

import pytest

import tor_async_couchdb as tac

ODD_IDS = [
    "plain",
    "with/slash",
    "a+plus",
    "with space",
    "per%cent",
    "q?x=1&y#z",
    "ünïcødé-€-日本",
    "_design/odd name/x",
    "_local/a b",
]


@pytest.mark.parametrize("doc_id", ODD_IDS)
async def test_document_round_trip_with_odd_ids(db: tac.Database, doc_id: str) -> None:
    saved = await db.put_doc({"_id": doc_id, "n": 1})
    assert saved["id"] == doc_id
    doc = await db.get_doc(doc_id)
    assert doc["_id"] == doc_id
    assert doc["n"] == 1
    assert doc["_rev"] == saved["rev"]
    if not doc_id.startswith("_local/"):
        assert await db.head_doc(doc_id) == saved["rev"]
    updated = await db.put_doc({**doc, "n": 2})
    assert (await db.get_doc(doc_id))["n"] == 2
    await db.delete_doc(doc_id, updated["rev"])
    with pytest.raises(tac.NotFound) as caught:
        await db.get_doc(doc_id)
    assert caught.value.doc_id == doc_id
    if not doc_id.startswith("_local/"):
        assert await db.head_doc(doc_id) is None


async def test_odd_ids_listed_by_all_docs(db: tac.Database) -> None:
    plain = [doc_id for doc_id in ODD_IDS if not doc_id.startswith("_local/")]
    results = await db.bulk_docs([{"_id": doc_id} for doc_id in plain])
    assert [result.id for result in results] == plain
    assert all(r.ok for r in results)
    assert sorted([row["id"] async for row in db.all_docs()]) == sorted(plain)
    rows = [row async for row in db.all_docs(keys=plain[::-1], include_docs=True)]
    assert [row["doc"]["_id"] for row in rows] == plain[::-1]


async def test_conflict_and_not_found(db: tac.Database) -> None:
    first = await db.put_doc({"_id": "a"})
    await db.put_doc({"_id": "a", "_rev": first["rev"]})
    outcome: tac.Conflict | dict[str, object]
    try:
        outcome = await db.put_doc({"_id": "a", "_rev": first["rev"]})
    except tac.Conflict as caught:
        outcome = caught
    if isinstance(outcome, tac.Conflict):
        assert (outcome.status, outcome.doc_id) == (409, "a")
    else:
        # A cluster copy that had not yet received the second write took this one: CouchDB
        # answers 202, which the raw layer must report as accepted, not committed.
        assert outcome["accepted"] is True
    with pytest.raises(tac.Conflict):
        await db.put_doc({"_id": "a"})
    with pytest.raises(tac.NotFound):
        await db.get_doc("missing")


async def test_post_doc_with_and_without_id(db: tac.Database) -> None:
    made = await db.post_doc({"v": 1})
    assert (await db.get_doc(made["id"]))["v"] == 1
    named = await db.post_doc({"_id": "x y", "v": 2})
    assert named["id"] == "x y"


async def test_not_json_documents_write_nothing(db: tac.Database) -> None:
    for bad in ({1, 2}, b"raw", math.nan, math.inf):
        with pytest.raises(tac.NotJSONError):
            await db.put_doc({"_id": "bad", "v": bad})
        with pytest.raises(tac.NotJSONError):
            await db.bulk_docs([{"_id": "good"}, {"_id": "bad", "v": bad}])
    assert (await db.info())["doc_count"] == 0


async def test_get_doc_options(db: tac.Database) -> None:
    first = await db.put_doc({"_id": "d", "v": 1})
    second = await db.put_doc({"_id": "d", "_rev": first["rev"], "v": 2})
    assert (await db.get_doc("d", rev=first["rev"]))["v"] == 1
    info = (await db.get_doc("d", revs_info=True))["_revs_info"]
    assert [item["rev"] for item in info] == [second["rev"], first["rev"]]


async def test_copy_doc(db: tac.Database) -> None:
    await db.put_doc({"_id": "src/1", "v": 1})
    assert (await db.copy_doc("src/1", "dst 1"))["ok"]  # CouchDB adds id and rev
    copied = await db.get_doc("dst 1")
    assert copied["v"] == 1
    await db.put_doc({"_id": "src/1", "_rev": (await db.get_doc("src/1"))["_rev"], "v": 2})
    await db.copy_doc("src/1", "dst 1", target_rev=copied["_rev"])
    assert (await db.get_doc("dst 1"))["v"] == 2
    with pytest.raises(tac.Conflict):
        await db.copy_doc("src/1", "dst 1")
    for target in ("é", "a?b", "line\nbreak"):
        with pytest.raises(tac.InvalidInputError):
            await db.copy_doc("src/1", target)


async def test_attachments(db: tac.Database) -> None:
    data = bytes(range(256)) * 10
    made = await db.put_attachment("doc/1", "file name.bin", data, content_type="image/png")
    assert await db.get_attachment("doc/1", "file name.bin") == (data, "image/png")
    doc = await db.get_doc("doc/1", attachments=True)
    assert doc["_attachments"]["file name.bin"]["content_type"] == "image/png"
    gone = await db.delete_attachment("doc/1", "file name.bin", made["rev"])
    assert gone["ok"]
    with pytest.raises(tac.NotFound):
        await db.get_attachment("doc/1", "file name.bin")


async def test_bulk_docs_matches_results_by_id(db: tac.Database) -> None:
    ids = [f"d{n:03}" for n in range(50)]
    results = await db.bulk_docs([{"_id": doc_id, "n": n} for n, doc_id in enumerate(ids)])
    assert [result.id for result in results] == ids
    assert all(r.ok for r in results)
    revs = {result.id: result.rev for result in results}
    # Every other doc is stale: conflicts must land on exactly those ids.
    docs = [
        {"_id": doc_id, "_rev": revs[doc_id] if n % 2 else "1-0000", "n": -n}
        for n, doc_id in enumerate(ids)
    ]
    again = await db.bulk_docs(docs)
    assert [result.id for result in again] == ids
    for n, result in enumerate(again):
        assert result.ok is bool(n % 2), result
        if not result.ok:
            assert isinstance(result.error, tac.Conflict)
            assert result.error.doc_id == result.id
    unnamed = await db.bulk_docs([{"v": 1}, {"_id": "named"}, {"v": 2}])
    assert unnamed[1].id == "named"
    assert all(r.ok for r in unnamed)
    assert len({r.id for r in unnamed}) == 3


async def test_bulk_get(db: tac.Database) -> None:
    first = await db.put_doc({"_id": "a/1", "v": 1})
    await db.put_doc({"_id": "b", "v": 2})
    answer = await db.bulk_get([("a/1", first["rev"]), ("b", None), ("missing", None)])
    assert [item["id"] for item in answer] == ["a/1", "b", "missing"]
    assert answer[0]["docs"][0]["ok"]["v"] == 1
    assert answer[1]["docs"][0]["ok"]["v"] == 2
    assert "ok" not in answer[2]["docs"][0]  # CouchDB: {"error": ...}; pouchdb-server: {}
