"""The floor: a minimal asyncio HTTP/1.1 keep-alive client (one connection, one request at
a time), hand-built request bytes, minimal response parsing (status, Content-Length or
chunked, Connection: close), orjson for bodies."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import orjson


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.open = False
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.open = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError("connection lost"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is not None:
            self._parse()

    def _parse(self) -> None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buf[:end]).lower()
        status = int(head[9:12])
        start = end + 4
        at = head.find(b"\r\ncontent-length:")
        if at >= 0:
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            if len(buf) < start + length:
                return
            body = bytes(buf[start : start + length])
            del buf[: start + length]
        elif b"\r\ntransfer-encoding: chunked" in head:
            parts: list[bytes] = []
            pos = start
            while True:
                line_end = buf.find(b"\r\n", pos)
                if line_end < 0:
                    return
                size = int(bytes(buf[pos:line_end]).split(b";", 1)[0], 16)
                if size == 0:
                    if len(buf) < line_end + 4:
                        return
                    del buf[: line_end + 4]
                    break
                if len(buf) < line_end + 2 + size + 2:
                    return
                parts.append(bytes(buf[line_end + 2 : line_end + 2 + size]))
                pos = line_end + 2 + size + 2
            body = b"".join(parts)
        else:  # no body (204/304) in our use
            body = b""
            del buf[:start]
        if b"\r\nconnection: close" in head:
            self.close_after = True
        waiter, self.waiter = self.waiter, None
        assert waiter is not None
        waiter.set_result((status, body))


class RawClient:
    """One keep-alive connection; ``request`` returns ``(status, decoded JSON)``."""

    def __init__(self, host: str, port: int, user: str, password: str) -> None:
        self.host = host
        self.port = port
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._fixed = (
            f"Host: {host}:{port}\r\nAuthorization: Basic {token}\r\nAccept: application/json\r\n"
        ).encode()
        self._proto: _Protocol | None = None
        self.connections_opened = 0

    async def _connection(self) -> _Protocol:
        proto = self._proto
        if proto is None or not proto.open or proto.close_after:
            if proto is not None and proto.transport is not None:
                proto.transport.close()
            loop = asyncio.get_running_loop()
            _, proto = await loop.create_connection(_Protocol, self.host, self.port)
            self.connections_opened += 1
            self._proto = proto
        return proto

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        proto = await self._connection()
        if body is None:
            data = b"%s %s HTTP/1.1\r\n%s\r\n" % (method.encode(), path.encode(), self._fixed)
        else:
            payload = orjson.dumps(body)
            data = b"%s %s HTTP/1.1\r\n%sContent-Type: application/json\r\n" % (
                method.encode(),
                path.encode(),
                self._fixed,
            )
            data += b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
        waiter: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        proto.waiter = waiter
        assert proto.transport is not None
        proto.transport.write(data)
        if proto.buf:
            proto._parse()
        status, raw = await waiter
        return status, orjson.loads(raw) if raw else None

    async def aclose(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None
