"""Faults: a server that dies, hangs or drops connections; cancellation; pool bounds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

import tor_async_couchdb as tac
from support.httpserver import HTTPTestServer, ServerConnection, ServerRequest
from support.tcpproxy import TCPProxy
from tor_async_couchdb._transport import HTTP11Transport
from tor_async_couchdb.testing import CouchServer

_FAST = tac.RetryPolicy(max_retries=3, backoff=0.01, max_backoff=0.05)


def _proxy_for(server: CouchServer) -> TCPProxy:
    parts = urlsplit(server.url)
    assert parts.hostname
    assert parts.port
    return TCPProxy(parts.hostname, parts.port)


def _open_sockets(client: tac.CouchDB) -> int:
    transport = client._transport
    assert isinstance(transport, HTTP11Transport)
    return transport.open_connections


@pytest.mark.embedded_only  # it kills and restarts its server: only one the suite started
async def test_server_killed_then_restarted(extra_servers: Callable[..., CouchServer]) -> None:
    server = extra_servers()
    assert server.embedded is not None
    timeouts = tac.Timeouts(connect=2.0, read=2.0, pool=2.0)
    async with tac.CouchDB(server.url, auth=server.auth, timeouts=timeouts, retry=_FAST) as client:
        db = client.database("survivor")
        await db.create()
        await db.put_doc({"_id": "kept"})
        server.embedded.kill_sync()
        started = time.monotonic()
        with pytest.raises(tac.TransportError):
            await db.get_doc("kept")
        assert time.monotonic() - started < 3.0
        assert await client.up() is False
        await server.embedded.restart()
        assert (await db.get_doc("kept"))["_id"] == "kept"
        await db.put_doc({"_id": "after"})
        assert await client.up() is True


@pytest.mark.embedded_only
async def test_hanging_server_raises_read_timeout_in_time(couch_server: CouchServer) -> None:
    async with _proxy_for(couch_server) as proxy:
        timeouts = tac.Timeouts(connect=1.0, read=0.3, pool=1.0)
        async with tac.CouchDB(
            f"http://127.0.0.1:{proxy.port}",
            auth=couch_server.auth,
            timeouts=timeouts,
            retry=tac.RetryPolicy.disabled(),
        ) as client:
            await client.all_dbs()
            proxy.pause()
            started = time.monotonic()
            with pytest.raises(tac.ReadTimeout):
                await client.all_dbs()
            assert time.monotonic() - started < 1.0
            proxy.resume()
            await client.all_dbs()


@pytest.mark.embedded_only
async def test_dropped_connections_retry_idempotent_requests_only(
    couch_server: CouchServer, db: tac.Database
) -> None:
    async with _proxy_for(couch_server) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        async with tac.CouchDB(url, auth=couch_server.auth, retry=_FAST) as client:
            through = client.database(db.name)
            await through.put_doc({"_id": "a"})  # connection 1 stays open, idle
            proxy.drop_every(2)

            async def fresh_connection() -> None:
                proxy.drop_all()
                await proxy.wait_for_open(0)
                await asyncio.sleep(0.05)  # let the client see its idle connection close

            await fresh_connection()
            assert (await through.get_doc("a"))["_id"] == "a"  # 2 dropped, 3 answers
            await fresh_connection()
            with pytest.raises(tac.ConnectionLost):
                await through.post_doc({"server": "picks the id"})  # 4 dropped: surfaces
            await fresh_connection()
            await client.all_dbs()  # 5 answers
            await fresh_connection()
            assert (await through.post_doc({"_id": "b"}))["ok"]  # 6 dropped, 7 answers
            doc = await through.get_doc("a")
            await fresh_connection()
            assert (await through.put_doc(doc))["ok"]  # 8 dropped, 9 answers
            assert client.stats().retries == 3
        assert proxy.connections_accepted == 9
    assert (await db.info())["doc_count"] == 2


@pytest.mark.embedded_only
async def test_cancelled_request_releases_its_connection(couch_server: CouchServer) -> None:
    async with _proxy_for(couch_server) as proxy:
        limits = tac.Limits(max_connections=1)
        timeouts = tac.Timeouts(connect=1.0, read=5.0, pool=1.0)
        url = f"http://127.0.0.1:{proxy.port}"
        async with tac.CouchDB(url, auth=couch_server.auth, limits=limits, timeouts=timeouts) as c:
            await c.all_dbs()
            proxy.pause()
            hung = asyncio.ensure_future(c.all_dbs())
            waiting = asyncio.ensure_future(c.all_dbs())  # queued for the only connection
            await asyncio.sleep(0.1)
            waiting.cancel()
            hung.cancel()
            for task in (hung, waiting):
                with pytest.raises(asyncio.CancelledError):
                    await task
            proxy.resume()
            assert _open_sockets(c) == 0  # the half-used connection was closed, not pooled
            assert isinstance(await c.all_dbs(), list)  # and the pool slot is free again
            assert _open_sockets(c) == 1
        await proxy.wait_for_open(0)


@pytest.mark.embedded_only
async def test_pool_never_exceeds_max_connections(
    couch_server: CouchServer, db: tac.Database
) -> None:
    await db.put_doc({"_id": "hot"})
    async with _proxy_for(couch_server) as proxy:
        peak = 0
        limits = tac.Limits(max_connections=10)
        url = f"http://127.0.0.1:{proxy.port}"
        client = tac.CouchDB(url, auth=couch_server.auth, limits=limits)
        through = client.database(db.name)
        gate = asyncio.Semaphore(100)

        async def one() -> None:
            nonlocal peak
            async with gate:
                await through.get_doc("hot")
                peak = max(peak, proxy.open_connections, _open_sockets(client))

        await asyncio.gather(*(one() for _ in range(1000)))
        stats = client.stats()
        await client.aclose()
        await proxy.wait_for_open(0)
        assert 1 < peak <= 10
        assert proxy.connections_accepted <= 10
        assert _open_sockets(client) == 0
    assert stats.requests == 1000


async def _answer(request: ServerRequest, conn: ServerConnection) -> None:
    if request.target == "/_all_dbs":
        await conn.send(200, b"<html>not couch</html>", [("Content-Type", "text/html")])
    elif request.target == "/cut":
        await conn.send(200, b'{"rows":[{"id":"a"', [("Content-Type", "application/json")])
    else:
        conn.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"ok":')
        await conn.drain()
        conn.close()


async def test_non_json_and_truncated_answers_raise_protocol_error() -> None:
    async with HTTPTestServer(_answer) as server:
        url = f"http://127.0.0.1:{server.port}"
        async with tac.CouchDB(url, retry=tac.RetryPolicy.disabled()) as client:
            with pytest.raises(tac.ProtocolError) as caught:
                await client.all_dbs()
            assert caught.value.url == f"{url}/_all_dbs"
            assert url in str(caught.value)
            with pytest.raises(tac.ProtocolError) as caught:
                await client._engine.json("GET", "/cut")
            assert caught.value.url == f"{url}/cut"
            with pytest.raises(tac.ProtocolError) as lost:
                await client.database("short").info()
            assert lost.value.url == f"{url}/short"
            assert isinstance(lost.value, tac.IncompleteAnswer)


async def test_redirects_are_not_followed_so_credentials_stay_home() -> None:
    # Another host asks for the request: the client reports the redirect and sends nothing
    # there, so credentials can never reach it.
    async with HTTPTestServer() as elsewhere:

        async def redirect(request: ServerRequest, conn: ServerConnection) -> None:
            location = f"http://127.0.0.1:{elsewhere.port}{request.target}"
            await conn.send(302, b"", [("Location", location)])

        async with HTTPTestServer(redirect) as server:
            url = f"http://admin:secret@127.0.0.1:{server.port}"
            async with tac.CouchDB(url) as client:
                with pytest.raises(tac.HTTPStatusError) as caught:
                    await client.database("moved").info()
            assert caught.value.status == 302
            assert "secret" not in str(caught.value)
            assert len(server.requests) == 1
            assert elsewhere.requests == []
            assert elsewhere.connections_accepted == 0
