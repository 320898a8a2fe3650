"""A tiny HTTP/1.1 server on 127.0.0.1 for transport tests.

It parses requests just well enough (head, ``Content-Length`` body, keep-alive) and hands each to
a handler coroutine, which answers by writing bytes through a :class:`ServerConnection`: a well
formed answer with the helpers, or anything malformed, slow, truncated or nothing at all. It
counts connections so tests can check what the client really opened.

    async def handler(request: ServerRequest, conn: ServerConnection) -> None:
        await conn.send(200, b'{"ok":true}')

    async with HTTPTestServer(handler) as server:
        ...  # server.port, server.connections_accepted, server.max_open_connections
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType

from tor_async_couchdb._transport import HTTP11Transport, Limits, Timeouts

__all__ = [
    "HTTPTestServer",
    "Handler",
    "ServerConnection",
    "ServerRequest",
    "answer_head",
    "ok_handler",
    "transport_for",
]


@dataclass(frozen=True, slots=True)
class ServerRequest:
    """A request as the server read it; header names lower-cased."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    connection_id: int
    raw_head: bytes


Handler = Callable[[ServerRequest, "ServerConnection"], Awaitable[None]]


def answer_head(
    status: int = 200,
    headers: Iterable[tuple[str, str]] = (),
    *,
    version: str = "HTTP/1.1",
) -> bytes:
    """An answer's status line and headers, ending with the blank line."""
    lines = [f"{version} {status} X"] + [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class ServerConnection:
    """The server's side of one connection, as handed to a handler."""

    def __init__(self, writer: asyncio.StreamWriter, connection_id: int) -> None:
        self.writer = writer
        self.connection_id = connection_id
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()

    def close(self) -> None:
        """Close after sending what was written (FIN)."""
        self.closed = True
        self.writer.close()

    def abort(self) -> None:
        """Drop the connection at once, unsent data lost."""
        self.closed = True
        self.writer.transport.abort()

    async def send(
        self,
        status: int = 200,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
        *,
        close: bool = False,
    ) -> None:
        """A whole answer with ``Content-Length``; ``close`` adds ``Connection: close`` and
        closes after it."""
        extra = [("Connection", "close")] if close else []
        head = answer_head(status, [("Content-Length", str(len(body))), *headers, *extra])
        self.write(head + body)
        await self.drain()
        if close:
            self.close()

    async def send_chunked(
        self,
        parts: Iterable[bytes],
        *,
        status: int = 200,
        headers: Iterable[tuple[str, str]] = (),
        delay: float = 0.0,
    ) -> None:
        """A chunked answer, one chunk per part, ``delay`` seconds between parts."""
        self.write(answer_head(status, [("Transfer-Encoding", "chunked"), *headers]))
        await self.drain()
        for part in parts:
            if delay:
                await asyncio.sleep(delay)
            if part:
                self.write(b"%x\r\n%s\r\n" % (len(part), part))
                await self.drain()
        self.write(b"0\r\n\r\n")
        await self.drain()


async def ok_handler(request: ServerRequest, conn: ServerConnection) -> None:
    """Answers every request with 200 and a small JSON body naming the request."""
    body = b'{"method":"%s","target":"%s","length":%d}' % (
        request.method.encode(),
        request.target.encode(),
        len(request.body),
    )
    await conn.send(200, body, [("Content-Type", "application/json")])


class HTTPTestServer:
    """An HTTP/1.1 server on a free port of 127.0.0.1, for ``async with``.

    ``idle_timeout`` closes keep-alive connections idle that long, as Node does after 5 s;
    ``ssl`` serves HTTPS.
    """

    def __init__(
        self,
        handler: Handler = ok_handler,
        *,
        idle_timeout: float | None = None,
        ssl: _ssl.SSLContext | None = None,
    ) -> None:
        self._handler = handler
        self._idle_timeout = idle_timeout
        self._ssl = ssl
        self._server: asyncio.Server | None = None
        self._port = 0  # kept after closing, for messages that name it
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.requests: list[ServerRequest] = []
        self.connections_accepted = 0
        self.open_connections = 0
        self.max_open_connections = 0
        self._changed = asyncio.Event()  # set whenever a counter above changes

    @property
    def port(self) -> int:
        assert self._port, "use the server inside 'async with'"
        return self._port

    async def __aenter__(self) -> HTTPTestServer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self._ssl)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def wait_for_open(self, count: int, *, within: float = 5.0) -> None:
        """Wait until exactly ``count`` connections are open on the server side (the server
        notices a client's close a little after the client made it)."""
        async with asyncio.timeout(within):
            while self.open_connections != count:
                self._changed.clear()
                await self._changed.wait()

    async def wait_for_requests(self, count: int, *, within: float = 5.0) -> None:
        """Wait until the server has read ``count`` requests."""
        async with asyncio.timeout(within):
            while len(self.requests) < count:
                self._changed.clear()
                await self._changed.wait()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Our own task rather than the one start_server would make: that one's done callback
        # trips over cancellation (Python 3.11), and aclose() must be able to cancel handlers.
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.connections_accepted += 1
        self.open_connections += 1
        self.max_open_connections = max(self.max_open_connections, self.open_connections)
        self._changed.set()
        conn = ServerConnection(writer, self.connections_accepted)
        try:
            while not conn.closed:
                request = await self._read_request(reader, conn.connection_id)
                if request is None:
                    break
                self.requests.append(request)
                self._changed.set()
                await self._handler(request, conn)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self.open_connections -= 1
            self._changed.set()
            self._writers.discard(writer)
            writer.transport.abort()

    async def _read_request(
        self, reader: asyncio.StreamReader, connection_id: int
    ) -> ServerRequest | None:
        try:
            async with asyncio.timeout(self._idle_timeout):
                head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None  # the client closed between requests
        except TimeoutError:
            return None  # idle too long: close, as keep-alive servers do
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = b""
        length = int(headers.get("content-length", "0"))
        if length:
            body = await reader.readexactly(length)
        return ServerRequest(method, target, headers, body, connection_id, head)


def transport_for(
    port: int,
    *,
    connect: float | None = 5.0,
    read: float | None = 5.0,
    pool: float | None = 5.0,
    max_connections: int = 10,
    keepalive_expiry: float = 30.0,
) -> HTTP11Transport:
    """An :class:`HTTP11Transport` to ``http://127.0.0.1:port`` with test-sized limits."""
    return HTTP11Transport(
        scheme="http",
        host="127.0.0.1",
        port=port,
        ssl=None,
        server_hostname=None,
        timeouts=Timeouts(connect=connect, read=read, pool=pool),
        limits=Limits(max_connections=max_connections, keepalive_expiry=keepalive_expiry),
    )
