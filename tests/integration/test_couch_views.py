"""_all_docs, views and Mango paging against the real server: every row exactly once."""

from __future__ import annotations

from typing import Any

import pytest

import tor_async_couchdb as tac

_MAP = "function (doc) { if (doc.k !== undefined) { emit(doc.k, doc.n); } }"
_DESIGN = {
    "_id": "_design/t",
    "views": {"by_k": {"map": _MAP}, "sum_k": {"map": _MAP, "reduce": "_count"}},
}


@pytest.fixture
async def filled(db: tac.Database) -> tac.Database:
    # 25 rows sharing key "same" (more than any page below), and 15 with their own keys.
    docs: list[dict[str, Any]] = [{"_id": f"s{n:02}", "k": "same", "n": n} for n in range(25)]
    docs += [{"_id": f"u{n:02}", "k": f"k{n:02}", "n": n} for n in range(15)]
    docs += [{"_id": f"a{n:02}", "k": "aa", "n": n} for n in range(3)]
    await db.bulk_docs([_DESIGN, *docs])
    return db


def _order(rows: list[dict[str, Any]]) -> list[tuple[Any, str]]:
    return [(row["key"], row["id"]) for row in rows]


@pytest.mark.parametrize("page_size", [1, 4, 7, 100])
async def test_view_pages_return_every_row_once(filled: tac.Database, page_size: int) -> None:
    rows = [row async for row in filled.view("t", "by_k", page_size=page_size)]
    whole = [row async for row in filled.view("t", "by_k", page_size=1000)]
    assert len(whole) == 43
    assert _order(rows) == _order(whole)
    assert len({row["id"] for row in rows}) == 43
    assert _order(whole) == sorted(_order(whole))


@pytest.mark.parametrize("page_size", [3, 10])
async def test_view_paging_descending_and_by_key(filled: tac.Database, page_size: int) -> None:
    down = [row async for row in filled.view("t", "by_k", descending=True, page_size=page_size)]
    assert _order(down) == sorted(_order(down), reverse=True)
    assert len(down) == 43
    same = [row async for row in filled.view("t", "by_k", key="same", page_size=page_size)]
    assert [row["id"] for row in same] == [f"s{n:02}" for n in range(25)]
    ranged = [
        row
        async for row in filled.view(
            "t", "by_k", startkey="k03", endkey="k07", inclusive_end=False, page_size=page_size
        )
    ]
    assert [row["key"] for row in ranged] == ["k03", "k04", "k05", "k06"]


async def test_view_limit_include_docs_keys_and_reduce(filled: tac.Database) -> None:
    limited = [row async for row in filled.view("t", "by_k", limit=30, page_size=7)]
    assert len(limited) == 30
    assert len({row["id"] for row in limited}) == 30
    docs = [row async for row in filled.view("t", "by_k", key="aa", include_docs=True)]
    assert [row["doc"]["_id"] for row in docs] == ["a00", "a01", "a02"]
    by_keys = [
        row async for row in filled.view("t", "by_k", keys=["k01", "aa", "k02"], page_size=2)
    ]
    assert [row["key"] for row in by_keys] == ["k01", "aa", "aa", "aa", "k02"]
    grouped = [row async for row in filled.view("t", "sum_k", group=True, page_size=4)]
    counts = {row["key"]: row["value"] for row in grouped}
    assert counts["same"] == 25
    assert counts["aa"] == 3
    assert len(counts) == 17
    total = [row async for row in filled.view("t", "sum_k")]
    assert total[0]["value"] == 43
    stale = [row async for row in filled.view("t", "by_k", key="aa", update="false")]
    assert len(stale) == 3


@pytest.mark.parametrize("page_size", [1, 6, 50])
async def test_all_docs_paging(filled: tac.Database, page_size: int) -> None:
    ids = [row["id"] async for row in filled.all_docs(page_size=page_size)]
    assert len(ids) == 44
    assert ids == sorted(ids)
    down = [row["id"] async for row in filled.all_docs(page_size=page_size, descending=True)]
    assert down == ids[::-1]
    some = [
        row["id"]
        async for row in filled.all_docs(startkey="s10", endkey="s20", page_size=page_size)
    ]
    assert some == [f"s{n}" for n in range(10, 21)]


async def test_find_pages_by_id_without_bookmark(filled: tac.Database) -> None:
    selector = {"k": "same"}
    for page_size in (1, 4, 100):
        docs = [doc async for doc in filled.find(selector, page_size=page_size)]
        assert sorted(doc["_id"] for doc in docs) == [f"s{n:02}" for n in range(25)]
        assert len(docs) == 25
    limited = [doc async for doc in filled.find({"n": {"$gte": 10}}, limit=12, page_size=5)]
    assert len(limited) == 12
    assert len({doc["_id"] for doc in limited}) == 12
    fields = [doc async for doc in filled.find(selector, fields=["_id", "n"], page_size=10)]
    assert len(fields) == 25
    assert set(fields[0]) == {"_id", "n"}


async def test_indexes_and_sorted_find(filled: tac.Database) -> None:
    made = await filled.create_index(["n"], name="by_n", design="idx")
    assert made["result"] in ("created", "exists")
    names = [index["name"] for index in await filled.indexes()]
    assert "by_n" in names
    docs = [
        doc async for doc in filled.find({"n": {"$gt": 20}}, sort=["n"], use_index="idx", limit=10)
    ]
    assert [doc["n"] for doc in docs] == [21, 22, 23, 24]
    await filled.delete_index("idx", "by_n")
    assert "by_n" not in [index["name"] for index in await filled.indexes()]


async def test_paging_many_rows_of_one_key_keeps_every_page_small(db: tac.Database) -> None:
    # Where the server ignores startkey_docid, rows of one key are skipped, never re-read.
    await db.bulk_docs([_DESIGN, *({"_id": f"r{n:03}", "k": "one", "n": n} for n in range(60))])
    limits: list[int] = []

    def watch(record: tac.RequestRecord) -> None:
        if "/_view/" in record.url:
            limits.append(int(record.url.split("limit=")[1].split("&")[0]))

    async with tac.CouchDB(db.couch.url, auth=_auth_of(db), on_request=watch) as couch:
        view = couch.database(db.name).view("t", "by_k", key="one", include_docs=True, page_size=7)
        rows = [row async for row in view]
    assert [row["id"] for row in rows] == [f"r{n:03}" for n in range(60)]
    assert max(limits) <= 8


async def test_find_without_bookmark_pages_in_id_order_whatever_the_index(
    db: tac.Database,
) -> None:
    # n runs opposite to _id, and an index on n: the server's first-page order is not _id's.
    await db.bulk_docs([{"_id": f"d{n:03}", "n": 300 - n} for n in range(300)])
    await db.create_index(["n"], name="by_n", design="by_n")
    found = [doc["_id"] async for doc in db.find({"n": {"$gte": 0}}, page_size=100)]
    assert sorted(found) == [f"d{n:03}" for n in range(300)]
    assert len(found) == len(set(found))


@pytest.mark.embedded_only
async def test_find_that_cannot_be_paged_fails_before_yielding(db: tac.Database) -> None:
    await db.bulk_docs([{"_id": f"d{n:03}", "n": n} for n in range(30)])
    await db.create_index(["n"], name="by_n", design="by_n")
    seen: list[str] = []

    async def read_all() -> None:
        async for doc in db.find({"n": {"$gte": 0}}, use_index="by_n", page_size=10):
            seen.append(doc["_id"])

    with pytest.raises(tac.InvalidInputError, match="cannot be paged"):
        await read_all()
    assert seen == []
    whole = [doc async for doc in db.find({"n": {"$gte": 0}}, use_index="by_n", limit=10)]
    assert len(whole) == 10


def _auth_of(db: tac.Database) -> tac.BasicAuth:
    auth = db.couch._engine.auth
    assert isinstance(auth, tac.BasicAuth)
    return auth
