"""MockTransport: answers from a function, for unit tests of the layers above."""

from __future__ import annotations

import pytest

from tor_async_couchdb._exceptions import ClientClosedError, ConnectionLost
from tor_async_couchdb._transport import (
    MockRequest,
    MockTransport,
    Response,
    Timeouts,
    Transport,
)


async def test_records_requests_and_returns_the_handlers_answer() -> None:
    def handler(request: MockRequest) -> Response:
        return Response(200, {"content-type": "application/json"}, b'{"ok":true}')

    transport = MockTransport(handler)
    assert isinstance(transport, Transport)
    response = await transport.request("PUT", "/db/doc", [("Accept", "application/json")], b"{}")
    assert response.body == b'{"ok":true}'
    assert transport.requests == [
        MockRequest("PUT", "/db/doc", (("Accept", "application/json"),), b"{}")
    ]
    assert transport.requests[0].header("accept") == "application/json"
    assert transport.requests[0].header("x-missing") is None


async def test_async_handler_and_raised_errors() -> None:
    async def handler(request: MockRequest) -> Response:
        if request.target == "/lost":
            raise ConnectionLost("simulated", method=request.method, url=request.target)
        return Response(404, {}, b'{"error":"not_found"}')

    transport = MockTransport(handler)
    assert (await transport.request("GET", "/db/missing", [])).status == 404
    with pytest.raises(ConnectionLost):
        await transport.request("GET", "/lost", [])
    assert [r.target for r in transport.requests] == ["/db/missing", "/lost"]


async def test_stream_delivers_lines_and_records_timeouts() -> None:
    feed = b'{"seq":1}\n\n{"seq":2}\r\n{"last_seq":2}'
    transport = MockTransport(lambda request: Response(200, {}, feed))
    timeouts = Timeouts(read=90.0)
    async with transport.stream("GET", "/db/_changes", [], timeouts=timeouts) as response:
        assert response.status == 200
        lines = [line async for line in response.aiter_lines()]
    assert lines == [b'{"seq":1}', b"", b'{"seq":2}', b'{"last_seq":2}']
    async with transport.stream("GET", "/db/_changes", []) as response:
        pieces = [piece async for piece in response.aiter_bytes()]
    assert pieces == [b'{"seq":1}\n', b"\n", b'{"seq":2}\r\n', b'{"last_seq":2}']
    async with transport.stream("GET", "/db/_changes", []) as response:
        assert await response.read() == feed
    assert transport.requests[0].stream is True
    assert transport.requests[0].timeouts == timeouts
    assert transport.requests[1].timeouts is None


async def test_closed_mock_raises_client_closed() -> None:
    transport = MockTransport(lambda request: Response(200, {}, b""))
    await transport.aclose()
    await transport.aclose()
    with pytest.raises(ClientClosedError):
        await transport.request("GET", "/", [])
    with pytest.raises(ClientClosedError):
        async with transport.stream("GET", "/", []):
            pass
    assert transport.requests == []
