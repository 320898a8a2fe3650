"""HTTP11Transport through a TCPProxy that breaks connections, and the proxy itself."""

from __future__ import annotations

import asyncio

import pytest

from support.httpserver import (
    HTTPTestServer,
    ServerConnection,
    ServerRequest,
    transport_for,
)
from support.tcpproxy import TCPProxy
from tor_async_couchdb._exceptions import ConnectionLost, ReadTimeout


async def slow_or_ok(request: ServerRequest, conn: ServerConnection) -> None:
    if request.target == "/slow":
        await asyncio.sleep(0.3)
    await conn.send(200, b"x" * 100)


async def test_proxy_forwards_and_counts() -> None:
    async with (
        HTTPTestServer(slow_or_ok) as server,
        TCPProxy("127.0.0.1", server.port) as proxy,
    ):
        transport = transport_for(proxy.port)
        for _ in range(3):
            assert (await transport.request("GET", "/", [])).body == b"x" * 100
        assert proxy.connections_accepted == 1
        assert proxy.open_connections == 1
        await transport.aclose()
        await server.wait_for_open(0)
        await proxy.wait_for_open(0)


async def test_drop_all_fails_the_request_in_flight() -> None:
    async with (
        HTTPTestServer(slow_or_ok) as server,
        TCPProxy("127.0.0.1", server.port) as proxy,
    ):
        transport = transport_for(proxy.port)
        in_flight = asyncio.create_task(transport.request("GET", "/slow", []))
        await server.wait_for_requests(1)
        proxy.drop_all()
        with pytest.raises(ConnectionLost) as caught:
            await in_flight
        assert getattr(caught.value, "stale", None) is False  # a fresh connection
        assert caught.value.url == f"http://127.0.0.1:{proxy.port}/slow"
        assert transport.open_connections == 0
        assert (await transport.request("GET", "/", [])).status == 200
        await transport.aclose()


async def test_drop_all_between_requests_is_noticed_while_idle() -> None:
    async with (
        HTTPTestServer(slow_or_ok) as server,
        TCPProxy("127.0.0.1", server.port) as proxy,
    ):
        transport = transport_for(proxy.port)
        await transport.request("GET", "/", [])
        proxy.drop_all()
        await asyncio.sleep(0.05)
        assert transport.open_connections == 0
        assert (await transport.request("GET", "/", [])).status == 200
        assert proxy.connections_accepted == 2
        await transport.aclose()


async def test_drop_every_nth_connection() -> None:
    async with (
        HTTPTestServer(slow_or_ok) as server,
        TCPProxy("127.0.0.1", server.port) as proxy,
    ):
        proxy.drop_every(2)
        outcomes = []
        for _ in range(4):
            transport = transport_for(proxy.port)
            try:
                await transport.request("GET", "/", [])
                outcomes.append("ok")
            except ConnectionLost:
                outcomes.append("lost")
            await transport.aclose()
        assert outcomes == ["ok", "lost", "ok", "lost"]
        assert proxy.connections_accepted == 4


async def test_drop_after_bytes_truncates_the_answer() -> None:
    async with (
        HTTPTestServer(slow_or_ok) as server,
        TCPProxy("127.0.0.1", server.port) as proxy,
    ):
        proxy.drop_after_bytes(60)  # inside the body of the first answer
        transport = transport_for(proxy.port)
        with pytest.raises(ConnectionLost) as caught:
            await transport.request("GET", "/", [])
        assert getattr(caught.value, "stale", None) is False
        proxy.drop_after_bytes(None)
        assert (await transport.request("GET", "/", [])).body == b"x" * 100
        await transport.aclose()


async def test_pause_makes_answers_slow_and_resume_lets_them_through() -> None:
    async with (
        HTTPTestServer(slow_or_ok) as server,
        TCPProxy("127.0.0.1", server.port) as proxy,
    ):
        transport = transport_for(proxy.port, read=0.2)
        await transport.request("GET", "/", [])
        proxy.pause()
        with pytest.raises(ReadTimeout):
            await transport.request("GET", "/", [])
        patient = transport_for(proxy.port, read=5)
        late = asyncio.create_task(patient.request("GET", "/", []))
        await asyncio.sleep(0.1)
        assert not late.done()
        proxy.resume()
        assert (await late).status == 200
        await patient.aclose()
        await transport.aclose()


async def test_proxy_exit_closes_everything() -> None:
    async with HTTPTestServer(slow_or_ok) as server:
        async with TCPProxy("127.0.0.1", server.port) as proxy:
            transport = transport_for(proxy.port)
            in_flight = asyncio.create_task(transport.request("GET", "/slow", []))
            await server.wait_for_requests(1)
        with pytest.raises(ConnectionLost):
            await in_flight
        assert proxy.open_connections == 0
        await transport.aclose()
