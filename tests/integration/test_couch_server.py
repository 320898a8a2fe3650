"""Server-level API, database lifecycle and authentication against the real server."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

import tor_async_couchdb as tac
from conftest import unique_db_name
from support.eventually import eventually
from tor_async_couchdb.testing import CouchServer


async def test_server_methods(couch: tac.CouchDB) -> None:
    info = await couch.info()
    assert "version" in info
    assert await couch.up() is True
    uuids = await couch.uuids(3)
    assert len(set(uuids)) == 3
    session = await couch.session()
    assert session["userCtx"]["name"] == "admin"
    assert isinstance(await couch.active_tasks(), list)
    assert isinstance(await couch.all_dbs(), list)


async def test_database_lifecycle(couch: tac.CouchDB) -> None:
    db = couch.database(unique_db_name())
    assert await db.exists() is False
    assert await db.create() is True
    try:
        assert await db.exists() is True
        assert db.name in await couch.all_dbs()
        with pytest.raises(tac.PreconditionFailed):
            await db.create()
        assert await db.create(exists_ok=True) is False
        info = await db.info()
        assert info["db_name"] == db.name
        assert info["doc_count"] == 0
    finally:
        assert await db.delete_database() is True
    assert await db.exists() is False
    await db.delete_database(missing_ok=True)


async def test_ten_concurrent_creators_all_succeed(couch: tac.CouchDB) -> None:
    name = unique_db_name()
    clients = [tac.CouchDB(couch.url, auth=couch._engine.auth) for _ in range(10)]
    try:
        created = await asyncio.gather(
            *(client.database(name).create(exists_ok=True) for client in clients)
        )
        # CouchDB answers 201 to one creator and 412 to the others; pouchdb-server 201 to all.
        assert any(created)
        assert await couch.database(name).exists()
    finally:
        await couch.database(name).delete_database(missing_ok=True)
        for client in clients:
            await client.aclose()


async def test_security_and_maintenance(db: tac.Database) -> None:
    await db.set_security(admins={"names": ["boss"], "roles": []}, members={"roles": ["staff"]})

    async def applied() -> bool:  # (at once on one node; a cluster's nodes may lag)
        security = await db.security()
        return bool(security.get("admins", {}).get("names") == ["boss"])

    await eventually(applied)
    security = await db.security()
    assert security["admins"]["names"] == ["boss"]
    assert security["members"]["roles"] == ["staff"]
    await db.put_doc({"_id": "_design/d", "views": {"v": {"map": "function(d){emit(1)}"}}})
    await db.compact()
    with contextlib.suppress(tac.BadRequest):  # pouchdb-server has no per-design route
        await db.compact("d")
    await db.view_cleanup()
    assert isinstance(await db.design_info("d"), dict)


def test_invalid_database_name_rejected_before_any_request(couch: tac.CouchDB) -> None:
    for name in ("Bad_Name", "1db", "a b", ""):
        with pytest.raises(tac.InvalidNameError):
            couch.database(name)


@pytest.mark.embedded_only
async def test_session_auth_against_the_server(
    couch_server: CouchServer, caplog: pytest.LogCaptureFixture
) -> None:
    auth = tac.SessionAuth(couch_server.user, couch_server.password)
    with caplog.at_level(logging.DEBUG, logger="tor_async_couchdb"):
        async with tac.CouchDB(couch_server.url, auth=auth) as client:
            assert (await client.session())["userCtx"]["name"] == couch_server.user
            db = client.database(unique_db_name())
            await db.create()
            await db.put_doc({"_id": "a"})
            client._engine._cookie = "AuthSession=expired"  # as if the session timed out
            assert (await db.get_doc("a"))["_id"] == "a"
            await db.delete_database()
            text = repr(client) + "".join(record.getMessage() for record in caplog.records)
    assert couch_server.password not in text
    bad = tac.SessionAuth(couch_server.user, "wrong")
    async with tac.CouchDB(couch_server.url, auth=bad) as client:
        with pytest.raises(tac.Unauthorized) as caught:
            await client.all_dbs()
    assert "wrong" not in str(caught.value)


@pytest.mark.embedded_only
async def test_wrong_basic_credentials_are_unauthorized(couch_server: CouchServer) -> None:
    async with tac.CouchDB(couch_server.url, auth=("admin", "nope-secret")) as client:
        with pytest.raises(tac.Unauthorized) as caught:
            await client.database(unique_db_name()).create()
    assert "nope-secret" not in str(caught.value) + repr(caught.value)


async def test_url_credentials_become_basic_auth(couch_server: CouchServer) -> None:
    user, password = couch_server.user, couch_server.password
    url = couch_server.url.replace("://", f"://{user}:{password}@")
    async with tac.CouchDB(url) as client:
        assert password not in repr(client)
        assert password not in client.url
        assert (await client.session())["userCtx"]["name"] == user


async def test_stats_count_requests_and_bytes(couch: tac.CouchDB) -> None:
    before = couch.stats()
    await couch.all_dbs()
    with pytest.raises(tac.NotFound):
        await couch.database("missing_db_here").info()
    after = couch.stats()
    assert after.requests == before.requests + 2
    assert after.errors_by_status.get(404, 0) == before.errors_by_status.get(404, 0) + 1
    assert after.bytes_sent > before.bytes_sent
    assert after.bytes_received > before.bytes_received
