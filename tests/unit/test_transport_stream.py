"""HTTP11Transport.stream(): bodies delivered as they arrive, with flow control."""

from __future__ import annotations

import asyncio
import time

import pytest

from support.httpserver import (
    HTTPTestServer,
    ServerConnection,
    ServerRequest,
    answer_head,
    transport_for,
)
from tor_async_couchdb._exceptions import ConnectionLost, ReadTimeout
from tor_async_couchdb._transport import HTTP11Transport, Timeouts


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def collect_lines(
    transport: HTTP11Transport,
    target: str,
    into: list[bytes],
    *,
    timeouts: Timeouts | None = None,
    fail_at_first: bool = False,
) -> None:
    """Stream ``target`` and append its lines to ``into`` as they arrive."""
    async with transport.stream("GET", target, [], timeouts=timeouts) as response:
        async for line in response.aiter_lines():
            into.append(line)
            if fail_at_first:
                raise ZeroDivisionError


async def test_lines_come_out_before_the_answer_ends() -> None:
    finish = asyncio.Event()

    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        # A continuous _changes feed: one change, a heartbeat, another change split across
        # chunks, then silence until the test lets it end.
        conn.write(answer_head(200, [("Transfer-Encoding", "chunked")]))
        conn.write(chunk(b'{"seq":1}\n'))
        conn.write(chunk(b"\n"))
        conn.write(chunk(b'{"seq"') + chunk(b":2}\r\n"))
        await conn.drain()
        await finish.wait()
        conn.write(chunk(b'{"last_seq":2}') + b"0\r\n\r\n")
        await conn.drain()

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port)
        lines: list[bytes] = []
        async with transport.stream("GET", "/db/_changes?feed=continuous", []) as response:
            assert response.status == 200
            assert response.headers["transfer-encoding"] == "chunked"
            async for line in response.aiter_lines():
                lines.append(line)
                if len(lines) == 3:
                    assert not finish.is_set()  # these arrived while the answer was open
                    finish.set()
        assert lines == [b'{"seq":1}', b"", b'{"seq":2}', b'{"last_seq":2}']
        # Read to the end with keep-alive: the connection is reused.
        assert (await transport.request("GET", "/after", [])).status == 200
        assert server.connections_accepted == 1
        await transport.aclose()


async def test_aiter_bytes_and_read() -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        if request.target == "/chunked":
            await conn.send_chunked([b"ab", b"cd", b"ef"])
        elif request.method == "HEAD":
            conn.write(answer_head(200, [("Content-Length", "10")]))
        else:
            await conn.send(200, b"whole body")

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port)
        async with transport.stream("GET", "/chunked", []) as response:
            pieces = [piece async for piece in response.aiter_bytes()]
        assert b"".join(pieces) == b"abcdef"
        async with transport.stream("GET", "/plain", []) as response:
            assert await response.read() == b"whole body"
        async with transport.stream("HEAD", "/plain", []) as response:
            assert await response.read() == b""
        assert server.connections_accepted == 1
        await transport.aclose()


async def test_leaving_the_context_early_closes_the_connection() -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        if request.target == "/feed":
            await conn.send_chunked([b"%d\n" % i for i in range(1000)], delay=0.01)
        else:
            await conn.send(200, b"ok")

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port, max_connections=1)
        async with transport.stream("GET", "/feed", []) as response:
            async for line in response.aiter_lines():
                assert line == b"0"
                break
        assert transport.open_connections == 0
        with pytest.raises(RuntimeError, match="after its context exited"):
            await response.read()
        assert (await transport.request("GET", "/ok", [])).body == b"ok"
        assert server.connections_accepted == 2
        await transport.aclose()


async def test_failure_inside_the_context_closes_an_unfinished_stream() -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        await conn.send_chunked([b"a\n", b"b\n"], delay=0.05)

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port)
        with pytest.raises(ZeroDivisionError):
            await collect_lines(transport, "/feed", [], fail_at_first=True)
        assert transport.open_connections == 0
        await transport.aclose()


async def test_each_wait_is_bounded_by_the_streams_read_timeout() -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        conn.write(answer_head(200, [("Transfer-Encoding", "chunked")]) + chunk(b"first\n"))
        await conn.drain()
        await asyncio.Event().wait()

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port, read=30.0)
        lines: list[bytes] = []
        started = time.monotonic()
        with pytest.raises(ReadTimeout) as caught:
            await collect_lines(transport, "/feed", lines, timeouts=Timeouts(read=0.2))
        assert 0.15 < time.monotonic() - started < 2.0
        assert lines == [b"first"]
        assert caught.value.url == f"http://127.0.0.1:{server.port}/feed"
        assert transport.open_connections == 0
        await transport.aclose()


async def test_a_slow_reader_is_not_timed_out() -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        await conn.send_chunked([b"a\n", b"b\n", b"c\n"])

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port)
        async with transport.stream("GET", "/feed", [], timeouts=Timeouts(read=0.1)) as response:
            lines = []
            async for line in response.aiter_lines():
                lines.append(line)
                await asyncio.sleep(0.15)  # longer than the read timeout, but data is there
        assert lines == [b"a", b"b", b"c"]
        await transport.aclose()


async def test_flow_control_pauses_reading_until_the_buffer_drains() -> None:
    size = 32 * 1024 * 1024
    connections: list[ServerConnection] = []

    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        connections.append(conn)
        conn.write(answer_head(200, [("Content-Length", str(size))]))
        conn.write(b"x" * size)
        await conn.drain()

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port)
        async with transport.stream("GET", "/big", []) as response:
            await asyncio.sleep(0.3)  # read nothing for a while
            # The client holds at most its high-water mark plus one socket read...
            assert transport.bytes_received < 1024 * 1024
            # ...so the rest waits on the server's side (beyond what kernels buffer).
            assert connections[0].writer.transport.get_write_buffer_size() > 8 * 1024 * 1024
            total = 0
            async for piece in response.aiter_bytes():
                total += len(piece)
        assert total == size
        assert transport.open_connections == 1  # fully read: kept for reuse
        await transport.aclose()


async def test_truncated_stream_raises_after_delivering_what_came() -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        conn.write(answer_head(200, [("Transfer-Encoding", "chunked")]) + chunk(b"one\ntw"))
        await conn.drain()
        await asyncio.sleep(0.05)
        conn.close()

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port)
        lines: list[bytes] = []
        with pytest.raises(ConnectionLost) as caught:
            await collect_lines(transport, "/feed", lines)
        assert lines == [b"one"]
        assert "before the answer was complete" in str(caught.value)
        await transport.aclose()


async def test_close_delimited_stream_ends_with_the_connection() -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        conn.write(answer_head(200, [("Content-Type", "text/plain")]) + b"a\nb")
        await conn.drain()
        await asyncio.sleep(0.02)
        conn.write(b"c\n")
        await conn.drain()
        conn.close()

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port)
        async with transport.stream("GET", "/", []) as response:
            lines = [line async for line in response.aiter_lines()]
        assert lines == [b"a", b"bc"]
        assert transport.open_connections == 0
        await transport.aclose()


async def test_post_with_body_streams_the_answer() -> None:
    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        await conn.send_chunked([request.body, b"\n"])

    async with HTTPTestServer(handler) as server:
        transport = transport_for(server.port)
        body = b'{"doc_ids":["a"]}'
        async with transport.stream("POST", "/db/_changes", [], body) as response:
            assert [line async for line in response.aiter_lines()] == [body]
        assert server.requests[0].headers["content-length"] == str(len(body))
        await transport.aclose()
