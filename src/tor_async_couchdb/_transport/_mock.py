"""A transport that answers from a function, for unit tests of the layers above.

``MockTransport(handler)`` calls ``handler(MockRequest)`` for every request, records the request
in ``requests``, and returns (or awaits) the handler's :class:`Response`. A handler may raise any
transport error to simulate a failure. ``stream()`` delivers the body line by line (each piece
one line, with its line end), the way a ``_changes`` feed arrives.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

from .._exceptions import ClientClosedError
from ._base import Response, StreamResponse, Timeouts, Transport

__all__ = ["MockHandler", "MockRequest", "MockTransport"]


@dataclass(frozen=True, slots=True)
class MockRequest:
    """A request as the mock transport received it.

    ``stream`` says whether it came through :meth:`MockTransport.stream`, and ``timeouts`` holds
    the timeouts that call passed (``None`` if it passed none).
    """

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    stream: bool = False
    timeouts: Timeouts | None = None

    def header(self, name: str) -> str | None:
        """The value of the first header called ``name`` (any case), or ``None``."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)


MockHandler = Callable[[MockRequest], Response | Awaitable[Response]]


class MockTransport(Transport):
    """A :class:`Transport` whose answers come from ``handler``."""

    def __init__(self, handler: MockHandler) -> None:
        self._handler = handler
        self.requests: list[MockRequest] = []
        self.closed = False

    def __repr__(self) -> str:
        return f"<MockTransport requests={len(self.requests)} closed={self.closed}>"

    async def request(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None = None,
    ) -> Response:
        """Record the request and return the handler's answer (raising what it raises)."""
        return await self._answer(MockRequest(method, target, tuple(headers), body))

    def stream(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None = None,
        *,
        timeouts: Timeouts | None = None,
    ) -> _MockStreamContext:
        """Like :meth:`request`, but the answer's body is read line by line."""
        request = MockRequest(method, target, tuple(headers), body, True, timeouts)
        return _MockStreamContext(self, request)

    async def aclose(self) -> None:
        """Mark the transport closed; later requests raise :class:`ClientClosedError`."""
        self.closed = True

    async def _answer(self, request: MockRequest) -> Response:
        if self.closed:
            raise ClientClosedError(
                "the transport is closed", method=request.method, url=request.target
            )
        self.requests.append(request)
        answer = self._handler(request)
        if inspect.isawaitable(answer):
            return await answer
        return answer


class MockStreamResponse(StreamResponse):
    """A complete :class:`Response` served as a stream: one piece per line."""

    def __init__(self, response: Response) -> None:
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers
        self._pieces = response.body.splitlines(keepends=True)
        self._position = 0

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        while self._position < len(self._pieces):
            self._position += 1
            yield self._pieces[self._position - 1]

    async def aiter_lines(self) -> AsyncIterator[bytes]:
        async for piece in self.aiter_bytes():
            yield piece.rstrip(b"\r\n")

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self.aiter_bytes()])


class _MockStreamContext:
    def __init__(self, transport: MockTransport, request: MockRequest) -> None:
        self._transport = transport
        self._request = request

    async def __aenter__(self) -> MockStreamResponse:
        return MockStreamResponse(await self._transport._answer(self._request))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None
