"""The client and database fixtures work against the session's server."""

import tor_async_couchdb as tac


async def test_database_fixture_is_empty_and_writable(db: tac.Database) -> None:
    assert (await db.info())["doc_count"] == 0
    saved = await db.put_doc({"_id": "one", "n": 1})
    assert (await db.get_doc("one"))["_rev"] == saved["rev"]
