"""HTTP11Transport against a small local server: requests, answers, keep-alive and the pool."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time

import pytest

import tor_async_couchdb._transport as transport_package
from support.httpserver import (
    HTTPTestServer,
    ServerConnection,
    ServerRequest,
    answer_head,
    transport_for,
)
from tor_async_couchdb._exceptions import (
    ClientClosedError,
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    InvalidInputError,
    PoolTimeout,
    ProtocolError,
    ReadTimeout,
)
from tor_async_couchdb._transport import HTTP11Transport, Timeouts


def test_public_names_are_sorted_and_complete() -> None:
    names = transport_package.__all__
    assert names == sorted(names)
    assert {
        "HTTP11Transport",
        "Limits",
        "MockRequest",
        "MockTransport",
        "Response",
        "StreamResponse",
        "Timeouts",
        "Transport",
    } <= set(names)
    for name in names:
        assert getattr(transport_package, name) is not None


def test_constructor_validates_and_does_no_io() -> None:
    with pytest.raises(ValueError, match="scheme"):
        HTTP11Transport(scheme="ftp", host="h", port=1)
    with pytest.raises(ValueError, match="SSL"):
        HTTP11Transport(scheme="http", host="h", port=1, ssl=ssl.create_default_context())
    # No running loop needed and nothing opened: construction is pure.
    transport = HTTP11Transport(scheme="http", host="no-such-host.invalid", port=1)
    assert transport.open_connections == 0
    assert "no-such-host.invalid:1" in repr(transport)


# -- request heads -------------------------------------------------------------------------


async def test_request_head_is_exact() -> None:
    async with HTTPTestServer() as server:
        transport = transport_for(server.port)
        await transport.request("GET", "/db/doc%2F1?rev=1-a", [("Accept", "application/json")])
        await transport.request("PUT", "/db", [])
        await transport.request("POST", "/db/_find", [("X-A", "1"), ("X-A", "2")], b'{"a":1}')
        await transport.request("DELETE", "/db/doc?rev=1-a", [])
        await transport.aclose()
    heads = [request.raw_head for request in server.requests]
    host = f"Host: 127.0.0.1:{server.port}\r\n".encode()
    assert heads[0] == (
        b"GET /db/doc%2F1?rev=1-a HTTP/1.1\r\n" + host + b"Accept: application/json\r\n\r\n"
    )
    assert heads[1] == b"PUT /db HTTP/1.1\r\n" + host + b"Content-Length: 0\r\n\r\n"
    assert heads[2] == (
        b"POST /db/_find HTTP/1.1\r\n" + host + b"Content-Length: 7\r\nX-A: 1\r\nX-A: 2\r\n\r\n"
    )
    assert server.requests[2].body == b'{"a":1}'
    assert heads[3] == b"DELETE /db/doc?rev=1-a HTTP/1.1\r\n" + host + b"\r\n"


async def test_large_body_is_sent_whole() -> None:
    body = bytes(range(256)) * 4096  # 1 MiB: written apart from the head
    async with HTTPTestServer() as server:
        transport = transport_for(server.port)
        response = await transport.request("PUT", "/db/big", [], body)
        await transport.aclose()
    assert response.status == 200
    assert server.requests[0].body == body
    assert transport.bytes_sent == len(server.requests[0].raw_head) + len(body)


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/db", [("X-Evil", "a\r\nX-Injected: 1")]),
        ("/db", [("X-Evil\n", "a")]),
        ("/db HTTP/1.1\r\nX: y", []),
        ("/db", [("X-Name", "caf\u00e9\u20ac")]),
    ],
)
async def test_unsafe_head_is_rejected_before_sending(
    target: str, headers: list[tuple[str, str]]
) -> None:
    async with HTTPTestServer() as server:
        transport = transport_for(server.port)
        with pytest.raises(InvalidInputError) as caught:
            await transport.request("GET", target, headers)
        await transport.aclose()
    assert caught.value.method == "GET"
    assert server.connections_accepted == 0


# -- answers ---------------------------------------------------------------------------------


async def test_headers_are_lower_cased_and_repeats_joined() -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        headers = [
            ("Content-Type", "application/json"),
            ("X-Multi", "a"),
            ("x-multi", "b"),
            ("Set-Cookie", "AuthSession=old; Path=/"),
            ("Set-Cookie", "AuthSession=new; Expires=Wed, 21 Oct 2026 07:28:00 GMT"),
        ]
        await conn.send(201, b'{"ok":true}', headers)

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port)
        response = await transport.request("GET", "/", [])
        await transport.aclose()
    assert response.status == 201
    assert response.body == b'{"ok":true}'
    assert response.headers == {
        "content-length": "11",
        "content-type": "application/json",
        "x-multi": "a, b",
        "set-cookie": "AuthSession=new; Expires=Wed, 21 Oct 2026 07:28:00 GMT",
    }


async def test_chunked_answer_is_dechunked() -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        await conn.send_chunked([b'{"rows":[', b"1,2", b"]}"])

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port)
        first = await transport.request("GET", "/", [])
        second = await transport.request("GET", "/", [])
        await transport.aclose()
    assert first.body == second.body == b'{"rows":[1,2]}'
    assert server.connections_accepted == 1


async def test_close_delimited_answer_ends_with_the_connection() -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        conn.write(answer_head(200, [("Content-Type", "text/plain")]) + b"until the end")
        await conn.drain()
        conn.close()

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port)
        first = await transport.request("GET", "/", [])
        second = await transport.request("GET", "/", [])
        await transport.aclose()
    assert first.body == second.body == b"until the end"
    assert server.connections_accepted == 2  # such a connection cannot be reused


async def test_head_answer_has_no_body_and_keeps_the_connection() -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        if request.method == "HEAD":
            conn.write(answer_head(200, [("Content-Length", "47"), ("ETag", '"1-a"')]))
            await conn.drain()
        else:
            await conn.send(200, b"get")

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port)
        head = await transport.request("HEAD", "/db/doc", [])
        get = await transport.request("GET", "/db/doc", [])
        head_again = await transport.request("HEAD", "/db/doc", [])
        get_again = await transport.request("GET", "/db/doc", [])
        await transport.aclose()
    assert (head.status, head.body, head.headers["etag"]) == (200, b"", '"1-a"')
    assert head_again.body == b""
    assert get.body == get_again.body == b"get"
    assert server.connections_accepted == 1


async def test_head_answer_with_a_body_retires_the_connection() -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        await conn.send(200, b"a body HEAD must not have")

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port)
        head = await transport.request("HEAD", "/db/doc", [])
        get = await transport.request("GET", "/db/doc", [])
        await transport.aclose()
    assert head.body == b""
    assert get.body == b"a body HEAD must not have"
    assert server.connections_accepted == 2


@pytest.mark.parametrize("status", [204, 304])
async def test_bodiless_statuses_keep_the_connection(status: int) -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        if request.target == "/empty":
            conn.write(answer_head(status, [("ETag", '"x"')]))
            await conn.drain()
        else:
            await conn.send(200, b"next")

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port)
        empty = await transport.request("GET", "/empty", [])
        after = await transport.request("GET", "/next", [])
        await transport.aclose()
    assert (empty.status, empty.body) == (status, b"")
    assert after.body == b"next"
    assert server.connections_accepted == 1


async def test_interim_answers_are_skipped() -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        conn.write(answer_head(103, [("Link", "</style.css>; rel=preload")]))
        await conn.send(200, b"final")

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port)
        response = await transport.request("GET", "/", [])
        await transport.aclose()
    assert (response.status, response.body) == (200, b"final")
    assert "link" not in response.headers


@pytest.mark.parametrize(
    ("version", "headers", "reused"),
    [
        ("HTTP/1.1", [], True),
        ("HTTP/1.1", [("Connection", "close")], False),
        ("HTTP/1.0", [], False),
        ("HTTP/1.0", [("Connection", "keep-alive")], True),
    ],
)
async def test_keep_alive_follows_the_answer(
    version: str, headers: list[tuple[str, str]], reused: bool
) -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        conn.write(answer_head(200, [("Content-Length", "2"), *headers], version=version) + b"ok")
        await conn.drain()

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port)
        for _ in range(3):
            assert (await transport.request("GET", "/", [])).body == b"ok"
        await transport.aclose()
    assert server.connections_accepted == (1 if reused else 3)


# -- keep-alive and the pool -------------------------------------------------------------------


async def test_one_socket_serves_100_sequential_requests() -> None:
    async with HTTPTestServer() as server:
        transport = transport_for(server.port)
        for i in range(100):
            response = await transport.request("GET", f"/doc/{i}", [])
            assert response.body.startswith(b'{"method":"GET","target":"/doc/%d"' % i)
        assert transport.connections_opened == 1
        assert transport.open_connections == 1
        await transport.aclose()
        assert server.connections_accepted == 1
        stats = transport.stats
        assert stats.bytes_sent == sum(len(r.raw_head) for r in server.requests)
        assert stats.bytes_received > 100 * 45
        await server.wait_for_open(0)


async def test_1000_requests_at_concurrency_100_stay_within_10_sockets() -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        await asyncio.sleep(0.001)  # keep requests overlapping
        await conn.send(200, request.target.encode())

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port, max_connections=10)
        seen_open: list[int] = []

        async def worker(number: int) -> None:
            for i in range(10):
                target = f"/w{number}/r{i}"
                assert (await transport.request("GET", target, [])).body == target.encode()
                seen_open.append(transport.open_connections)

        async with asyncio.timeout(60):
            await asyncio.gather(*(worker(n) for n in range(100)))
        assert len(server.requests) == 1000
        assert server.max_open_connections <= 10
        assert server.connections_accepted <= 10
        assert max(seen_open) <= 10
        await transport.aclose()
        assert transport.open_connections == 0
        await server.wait_for_open(0)


async def test_waiters_are_served_in_fifo_order() -> None:
    release = asyncio.Event()

    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        if request.target == "/first":
            await release.wait()
        await conn.send(200, request.target.encode())

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port, max_connections=1)
        finished: list[str] = []

        async def get(target: str) -> None:
            await transport.request("GET", target, [])
            finished.append(target)

        first = asyncio.create_task(get("/first"))
        await server.wait_for_requests(1)
        others = []
        for n in range(5):
            others.append(asyncio.create_task(get(f"/n{n}")))
            await asyncio.sleep(0)  # queue them in a known order
        release.set()
        await asyncio.gather(first, *others)
        await transport.aclose()
    assert finished == ["/first", "/n0", "/n1", "/n2", "/n3", "/n4"]
    assert server.connections_accepted == 1


async def test_idle_connection_closed_by_server_is_never_handed_out() -> None:
    async with HTTPTestServer(idle_timeout=0.05) as server:
        transport = transport_for(server.port)
        await transport.request("GET", "/one", [])
        await server.wait_for_open(0)  # the server dropped the idle connection
        await asyncio.sleep(0.05)
        assert transport.open_connections == 0  # and the pool noticed at once
        response = await transport.request("GET", "/two", [])
        await transport.aclose()
    assert response.status == 200
    assert server.connections_accepted == 2


async def test_idle_connection_older_than_keepalive_expiry_is_replaced() -> None:
    async with HTTPTestServer() as server:
        transport = transport_for(server.port, keepalive_expiry=0.05)
        await transport.request("GET", "/one", [])
        await asyncio.sleep(0.1)
        await transport.request("GET", "/two", [])
        assert transport.connections_opened == 2
        assert transport.open_connections == 1
        await server.wait_for_open(1)
        await transport.aclose()


async def test_reused_connection_lost_before_any_answer_is_stale() -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        if request.target == "/drop":
            conn.close()  # as a keep-alive server closing "idle" just as the request came
        else:
            await conn.send(200, b"ok")

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port)
        await transport.request("GET", "/ok", [])
        with pytest.raises(ConnectionLost) as caught:
            await transport.request("GET", "/drop", [])
        assert getattr(caught.value, "stale", None) is True
        assert caught.value.method == "GET"
        assert caught.value.url == f"http://127.0.0.1:{server.port}/drop"
        # A fresh connection failing the same way is not stale: the server may have seen it.
        with pytest.raises(ConnectionLost) as caught:
            await transport.request("GET", "/drop", [])
        assert getattr(caught.value, "stale", None) is False
        assert transport.open_connections == 0
        assert (await transport.request("GET", "/ok", [])).body == b"ok"
        await transport.aclose()


# -- connecting ------------------------------------------------------------------------------


async def test_connection_refused_is_connect_error_at_once() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        transport = transport_for(port)
        started = time.monotonic()
        with pytest.raises(ConnectError) as caught:
            await transport.request("GET", "/db", [])
        assert time.monotonic() - started < 1.0
    assert caught.value.url == f"http://127.0.0.1:{port}/db"
    assert transport.open_connections == 0
    # The failed attempt gave its slot back.
    with pytest.raises(ConnectError):
        await transport.request("GET", "/db", [])
    await transport.aclose()


async def test_unresolvable_host_is_connect_error() -> None:
    transport = HTTP11Transport(
        scheme="http", host="no-such-host.invalid", port=80, timeouts=Timeouts(connect=5)
    )
    with pytest.raises(ConnectError) as caught:
        await transport.request("GET", "/", [])
    assert caught.value.url == "http://no-such-host.invalid:80/"
    await transport.aclose()


async def test_connect_timeout() -> None:
    # A listener whose one-place backlog is taken: further SYNs go unanswered.
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler.connect(("127.0.0.1", port))
        transport = transport_for(port, connect=0.2, max_connections=1)
        started = time.monotonic()
        with pytest.raises(ConnectTimeout) as caught:
            await transport.request("GET", "/slow", [])
        assert 0.15 < time.monotonic() - started < 2.0
        assert isinstance(caught.value, TimeoutError)
        assert caught.value.url == f"http://127.0.0.1:{port}/slow"
        with pytest.raises(ConnectTimeout):  # the slot was given back
            await transport.request("GET", "/slow", [])
        await transport.aclose()


# -- timeouts and cancellation -------------------------------------------------------------


async def hang_or_ok(request: ServerRequest, conn: ServerConnection) -> None:
    """Never answer ``/hang``; answer anything else at once."""
    if request.target == "/hang":
        await asyncio.Event().wait()
    await conn.send(200, b"ok")


async def test_read_timeout_closes_the_connection() -> None:
    async with HTTPTestServer(hang_or_ok) as server:
        transport = transport_for(server.port, read=0.2, max_connections=1)
        started = time.monotonic()
        with pytest.raises(ReadTimeout) as caught:
            await transport.request("GET", "/hang", [])
        assert 0.15 < time.monotonic() - started < 2.0
        assert caught.value.url == f"http://127.0.0.1:{server.port}/hang"
        assert transport.open_connections == 0
        assert (await transport.request("GET", "/ok", [])).body == b"ok"
        assert server.connections_accepted == 2
        await transport.aclose()


async def test_read_timeout_limits_inactivity_not_the_whole_answer() -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        await conn.send_chunked([b"x"] * 8, delay=0.05)  # 0.4 s in all, never 0.2 s silent

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port, read=0.2)
        response = await transport.request("GET", "/trickle", [])
        await transport.aclose()
    assert response.body == b"x" * 8


async def test_shorter_read_timeout_after_a_longer_one_still_fires() -> None:
    async with HTTPTestServer(hang_or_ok) as server:
        transport = transport_for(server.port, read=30.0, max_connections=1)
        await transport.request("GET", "/ok", [])  # arms the connection's timer for 30 s
        started = time.monotonic()
        with pytest.raises(ReadTimeout):
            async with transport.stream("GET", "/hang", [], timeouts=Timeouts(read=0.2)):
                pass
        assert time.monotonic() - started < 2.0
        await transport.aclose()


async def test_pool_timeout() -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        await asyncio.sleep(0.5)
        await conn.send(200, b"ok")

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port, pool=0.1, max_connections=1)
        busy = asyncio.create_task(transport.request("GET", "/busy", []))
        await server.wait_for_requests(1)
        with pytest.raises(PoolTimeout) as caught:
            await transport.request("GET", "/waiting", [])
        assert caught.value.url == f"http://127.0.0.1:{server.port}/waiting"
        assert (await busy).body == b"ok"
        # The timed-out waiter left no trace: the next request reuses the connection.
        assert (await transport.request("GET", "/after", [])).body == b"ok"
        assert server.connections_accepted == 1
        await transport.aclose()


async def test_cancelling_a_pending_request_releases_its_connection() -> None:
    async with HTTPTestServer(hang_or_ok) as server:
        transport = transport_for(server.port, max_connections=1, pool=1.0)
        pending = asyncio.create_task(transport.request("GET", "/hang", []))
        await server.wait_for_requests(1)
        assert transport.open_connections == 1
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        assert transport.open_connections == 0  # closed, its state being unknown
        # The only slot is free again: a later request gets it well within the pool timeout.
        assert (await transport.request("GET", "/ok", [])).body == b"ok"
        assert server.connections_accepted == 2
        await transport.aclose()


async def test_cancelling_a_queued_request_leaves_the_queue_working() -> None:
    release = asyncio.Event()

    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        if request.target == "/busy":
            await release.wait()
        await conn.send(200, b"ok")

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port, max_connections=1)
        busy = asyncio.create_task(transport.request("GET", "/busy", []))
        await server.wait_for_requests(1)
        queued = asyncio.create_task(transport.request("GET", "/queued", []))
        behind = asyncio.create_task(transport.request("GET", "/behind", []))
        await asyncio.sleep(0.01)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        release.set()
        assert (await busy).body == b"ok"
        assert (await behind).body == b"ok"
        assert server.connections_accepted == 1
        await transport.aclose()


async def test_cancelling_while_connecting_frees_the_slot() -> None:
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler.connect(("127.0.0.1", port))  # from now on, connecting hangs
        transport = transport_for(port, connect=0.2, pool=0.05, max_connections=1)
        connecting = asyncio.create_task(transport.request("GET", "/", []))
        await asyncio.sleep(0.05)
        connecting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await connecting
        # Had the slot leaked, this would be a PoolTimeout after 0.05 s.
        with pytest.raises(ConnectTimeout):
            await transport.request("GET", "/", [])
        await transport.aclose()


async def test_cancelling_a_stream_waiting_for_its_head_closes_the_connection() -> None:
    async with HTTPTestServer(hang_or_ok) as server:
        transport = transport_for(server.port, max_connections=1, pool=1.0)

        async def open_stream() -> None:
            async with transport.stream("GET", "/hang", []):
                pass

        pending = asyncio.create_task(open_stream())
        await server.wait_for_requests(1)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        assert transport.open_connections == 0
        assert (await transport.request("GET", "/ok", [])).body == b"ok"
        await transport.aclose()


# -- malformed and truncated answers ----------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    ],
)
async def test_malformed_answer_is_protocol_error(answer: bytes) -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        conn.write(answer)
        await conn.drain()

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port)
        with pytest.raises(ProtocolError) as caught:
            await transport.request("GET", "/bad", [])
        assert caught.value.url == f"http://127.0.0.1:{server.port}/bad"
        assert caught.value.method == "GET"
        assert transport.open_connections == 0
        await transport.aclose()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Len",
    ],
)
async def test_truncated_answer_is_connection_lost(answer: bytes) -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        if request.target == "/ok":
            await conn.send(200, b"ok")
            return
        conn.write(answer)
        await conn.drain()
        conn.close()

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port)
        await transport.request("GET", "/ok", [])  # so that the failing connection is a reused one
        with pytest.raises(ConnectionLost) as caught:
            await transport.request("GET", "/cut", [])
        assert getattr(caught.value, "stale", None) is False  # bytes had arrived
        assert caught.value.url == f"http://127.0.0.1:{server.port}/cut"
        await transport.aclose()


async def test_unsolicited_bytes_between_requests_retire_the_connection() -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        await conn.send(200, b"ok")
        if request.target == "/then-408":
            await asyncio.sleep(0.02)
            conn.write(answer_head(408, [("Content-Length", "0")]))

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port)
        await transport.request("GET", "/then-408", [])
        await server.wait_for_open(0)
        assert transport.open_connections == 0
        assert (await transport.request("GET", "/ok", [])).body == b"ok"
        assert server.connections_accepted == 2
        await transport.aclose()


# -- closing ---------------------------------------------------------------------------------


async def test_aclose_is_idempotent_and_later_requests_fail() -> None:
    async with HTTPTestServer() as server:
        transport = transport_for(server.port)
        await transport.request("GET", "/", [])
        await transport.aclose()
        await transport.aclose()
        assert transport.open_connections == 0
        with pytest.raises(ClientClosedError) as caught:
            await transport.request("GET", "/later", [])
        assert caught.value.url == f"http://127.0.0.1:{server.port}/later"
        with pytest.raises(ClientClosedError):
            async with transport.stream("GET", "/later", []):
                pass
        await server.wait_for_open(0)


async def test_aclose_fails_requests_under_way_and_waiting() -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        await asyncio.Event().wait()

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port, max_connections=1)
        under_way = asyncio.create_task(transport.request("GET", "/under-way", []))
        await server.wait_for_requests(1)
        waiting = asyncio.create_task(transport.request("GET", "/waiting", []))
        await asyncio.sleep(0.01)
        await transport.aclose()
        for task in (under_way, waiting):
            with pytest.raises(ClientClosedError):
                await task
        assert transport.open_connections == 0
