"""An asyncio TCP proxy that breaks connections on demand, for fault tests.

    async with TCPProxy("127.0.0.1", server_port) as proxy:
        client = connect_to(proxy.port)
        proxy.drop_all()            # reset every connection now
        proxy.drop_every(3)         # reset every 3rd accepted connection at once
        proxy.drop_after_bytes(10)  # reset a connection after 10 bytes of answer
        proxy.pause(); proxy.resume()

Everything is callbacks on ``asyncio.Protocol`` objects: the only tasks are the upstream
connects, which the proxy tracks and finishes on exit. "Reset" means RST (``SO_LINGER`` 0), as
when a server crashes or a middlebox drops the connection, not an orderly FIN.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from types import TracebackType

__all__ = ["TCPProxy"]


def _reset(transport: asyncio.Transport | None) -> None:
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _Upstream(asyncio.Protocol):
    """The proxy's connection to the target: answers flow back to the client side."""

    def __init__(self, pipe: _Pipe) -> None:
        self._pipe = pipe

    def data_received(self, data: bytes) -> None:
        self._pipe.answer_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._pipe.close()


class _Pipe(asyncio.Protocol):
    """The client's connection to the proxy, and the upstream connection made for it."""

    def __init__(self, proxy: TCPProxy) -> None:
        self._proxy = proxy
        self.client: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self._pending: list[bytes] = []  # client bytes that arrived before upstream was ready
        self.answer_bytes = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.client = transport
        self._proxy._accepted(self)

    def data_received(self, data: bytes) -> None:
        if self.upstream is None:
            self._pending.append(data)
        else:
            self.upstream.write(data)

    def eof_received(self) -> bool:
        if self.upstream is not None and self.upstream.can_write_eof():
            self.upstream.write_eof()
        return True  # keep the other direction open until upstream closes

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def upstream_ready(self, transport: asyncio.Transport) -> None:
        self.upstream = transport
        for data in self._pending:
            transport.write(data)
        self._pending.clear()
        if self._proxy.paused:
            transport.pause_reading()

    def answer_received(self, data: bytes) -> None:
        if self.client is None or self.closed:
            return
        limit = self._proxy._drop_after
        if limit is not None and self.answer_bytes + len(data) >= limit:
            self.client.write(data[: limit - self.answer_bytes])
            self.answer_bytes = limit
            self.reset()
            return
        self.answer_bytes += len(data)
        self.client.write(data)

    def set_paused(self, paused: bool) -> None:
        for transport in (self.client, self.upstream):
            if transport is not None and not transport.is_closing():
                if paused:
                    transport.pause_reading()
                else:
                    transport.resume_reading()

    def reset(self) -> None:
        _reset(self.client)
        _reset(self.upstream)
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for transport in (self.client, self.upstream):
            if transport is not None and not transport.is_closing():
                transport.close()
        self._proxy._closed(self)


class TCPProxy:
    """Forwards 127.0.0.1:``port`` to ``target_host:target_port``, with faults on demand."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._pipes: set[_Pipe] = set()
        self._connects: set[asyncio.Task[None]] = set()
        self._drop_every: int | None = None
        self._drop_after: int | None = None
        self.paused = False
        self.connections_accepted = 0
        self._changed = asyncio.Event()  # set whenever a connection opens or closes

    @property
    def port(self) -> int:
        assert self._server is not None, "use the proxy inside 'async with'"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def open_connections(self) -> int:
        """Client connections currently open through the proxy."""
        return len(self._pipes)

    async def wait_for_open(self, count: int, *, within: float = 5.0) -> None:
        """Wait until exactly ``count`` client connections are open through the proxy."""
        async with asyncio.timeout(within):
            while len(self._pipes) != count:
                self._changed.clear()
                await self._changed.wait()

    async def __aenter__(self) -> TCPProxy:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Pipe(self), "127.0.0.1", 0)
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
        for task in list(self._connects):
            task.cancel()
        if self._connects:
            await asyncio.wait(self._connects, timeout=5)
        for pipe in list(self._pipes):
            pipe.reset()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        await asyncio.sleep(0)  # let the loop release the aborted sockets

    # -- faults ------------------------------------------------------------------------------

    def drop_all(self) -> None:
        """Reset every connection open now."""
        for pipe in list(self._pipes):
            pipe.reset()

    def drop_every(self, n: int | None) -> None:
        """Reset every ``n``-th accepted connection as soon as it is accepted (``None``: off)."""
        self._drop_every = n

    def drop_after_bytes(self, n: int | None) -> None:
        """Reset each connection once ``n`` bytes of answer went through it (``None``: off)."""
        self._drop_after = n

    def pause(self) -> None:
        """Stop forwarding in both directions (bytes wait in the kernel's buffers)."""
        self.paused = True
        for pipe in self._pipes:
            pipe.set_paused(True)

    def resume(self) -> None:
        self.paused = False
        for pipe in self._pipes:
            pipe.set_paused(False)

    # -- bookkeeping -------------------------------------------------------------------------

    def _accepted(self, pipe: _Pipe) -> None:
        self.connections_accepted += 1
        self._pipes.add(pipe)
        self._changed.set()
        if self._drop_every and self.connections_accepted % self._drop_every == 0:
            pipe.reset()
            return
        if self.paused:
            pipe.set_paused(True)
        task = asyncio.get_running_loop().create_task(self._connect(pipe))
        self._connects.add(task)
        task.add_done_callback(self._connects.discard)

    async def _connect(self, pipe: _Pipe) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_connection(lambda: _Upstream(pipe), *self._target)
        except OSError:
            pipe.reset()
            return
        if pipe.closed:
            transport.close()
            return
        pipe.upstream_ready(transport)

    def _closed(self, pipe: _Pipe) -> None:
        self._pipes.discard(pipe)
        self._changed.set()
