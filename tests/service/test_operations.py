"""Health, metrics, a CouchDB that is down or hangs, and graceful shutdown, through HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import pytest
import tornado.web

from support.fruit_service import Client, Running, client, running_service, serving
from tor_async_couchdb.tornado import CouchRequestHandler, InFlight, serve_until_signalled

if TYPE_CHECKING:
    from tor_async_couchdb.testing import CouchServer

__all__ = ["client", "running_service"]  # fixtures, imported for pytest


async def test_health_answers_details(client: Client) -> None:
    answer = await client.call("GET", "/_health")
    assert answer.status == 200
    assert answer.body["status"] == "ok"
    assert answer.body["couchdb"]["version"]
    (db,) = answer.body["databases"].values()
    assert db["doc_count"] >= 2  # the design documents
    assert answer.body["latency_ms"] > 0


async def test_the_installer_put_the_views_security_and_signature_guard(
    running_service: Running,
) -> None:
    db = running_service.service.store.db
    guard = await db.get_doc("_design/tac_protect")
    assert "validate_doc_update" in guard
    security = await db.security()
    assert security["members"]["roles"] == ["fruit_store"]
    views = [row["id"] async for row in db.all_docs(startkey="_design/", endkey="_design0")]
    assert "_design/fruit_by_fruit_id" in views


async def test_metrics_count_routes_couchdb_and_conflicts(running_service: Running) -> None:
    client = running_service.client
    created = await client.call("POST", "/v1.0/fruits", {"color": "red"})
    fruit_id = created.body["fruit_id"]
    await client.call("GET", f"/v1.0/fruits/{fruit_id}")
    await client.call("GET", "/v1.0/fruits/nope")
    text = await client.call("GET", "/_metrics")
    assert text.status == 200
    assert str(text.header("Content-Type")).startswith("text/plain; version=0.0.4")
    lines = text.body.splitlines()
    assert 'http_requests_total{route="/v1.0/fruits",method="POST",status="201"} 1' in lines
    one = 'route="/v1.0/fruits/{fruit_id}",method="GET"'
    assert f'http_requests_total{{{one},status="200"}} 1' in lines
    assert f'http_requests_total{{{one},status="400"}} 1' in lines
    assert f"http_request_duration_seconds_count{{{one}}} 2" in lines
    assert any(line.startswith('couchdb_request_duration_seconds_count{method="PUT"}')
               for line in lines)  # fmt: skip
    assert any(line.startswith("couchdb_client_requests_total ") for line in lines)
    assert any(line.startswith("couchdb_database_doc_count{database=") for line in lines)

    as_json = (await client.call("GET", "/_metrics?format=json")).body
    route = as_json["routes"]["/v1.0/fruits/{fruit_id}"]["GET"]
    assert route["statuses"] == {"200": 1, "400": 1}
    assert route["latency"]["count"] == 2
    assert as_json["couchdb"]["GET"]["count"] >= 1
    assert as_json["client"]["requests"] >= 3
    assert "fruit_store" not in as_json["gauges"]  # keyed by metric, then database


async def test_every_request_is_logged_as_json(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tor_async_couchdb.access"):
        await client.call("GET", "/v1.0/fruits/" + "0" * 32)
    (record,) = [r for r in caplog.records if r.name == "tor_async_couchdb.access"]
    fields = json.loads(record.getMessage())
    assert fields == record.access  # type: ignore[attr-defined]
    assert (fields["method"], fields["status"], fields["route"]) == (
        "GET",
        404,
        "/v1.0/fruits/{fruit_id}",
    )
    assert fields["path"] == "/v1.0/fruits/" + "0" * 32
    assert fields["ms"] > 0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A TCP server that accepts connections and never answers: a hung CouchDB."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_couchdb_that_is_down_answers_503_at_once() -> None:
    async with serving(f"http://127.0.0.1:{_closed_port()}", None, install=False) as running:
        client = running.client
        started = time.monotonic()
        health = await client.call("GET", "/_health")
        assert (health.status, health.body["status"]) == (503, "unavailable")
        for method, path, body in [
            ("GET", "/v1.0/fruits/" + "0" * 32, None),
            ("POST", "/v1.0/fruits", {"color": "red"}),
            ("GET", "/v1.0/fruits", None),
        ]:
            answer = await client.call(method, path, body)
            assert (answer.status, answer.body["error"]) == (503, "database_unavailable")
            assert "127.0.0.1" not in answer.body["reason"]  # where the database is stays inside
        assert time.monotonic() - started < 5


@pytest.mark.multi_server
async def test_a_couchdb_killed_then_restarted(extra_servers: Callable[..., CouchServer]) -> None:
    server = extra_servers()
    assert server.embedded is not None
    async with serving(server.url, server.auth) as running:
        client = running.client
        fruit = (await client.call("POST", "/v1.0/fruits", {"color": "red"})).body
        path = f"/v1.0/fruits/{fruit['fruit_id']}"
        server.embedded.kill_sync()
        started = time.monotonic()
        assert (await client.call("GET", path)).status == 503
        assert (await client.call("GET", "/_health")).status == 503
        assert (await client.call("PUT", path, {"color": "green"})).status == 503
        assert time.monotonic() - started < 5
        await server.embedded.restart()
        assert (await client.call("GET", "/_health")).status == 200
        assert (await client.call("GET", path)).body["color"] == "red"  # nothing half-written
        assert (await client.call("PUT", path, {"color": "green"})).status == 200


async def test_a_hung_couchdb_answers_within_the_request_timeout(silent_server: str) -> None:
    async with serving(silent_server, None, install=False) as running:
        client = running.client
        started = time.monotonic()
        answer = await client.call("GET", "/v1.0/fruits/" + "0" * 32)
        waited = time.monotonic() - started
        assert (answer.status, answer.body["error"]) == (504, "timeout")
        assert 2.5 < waited < 5  # the request timeout is 3 s; the client's read timeout 10 s
        health = await client.call("GET", "/_health")
        assert health.status == 503
        assert "1.0 s" in health.body["reason"]


class _Slow(CouchRequestHandler):
    async def get(self) -> None:
        self.settings["started"].set()
        await asyncio.sleep(0.5)
        self.write_json({"done": True})


async def test_shutdown_lets_requests_in_flight_finish() -> None:
    in_flight = InFlight()
    started = asyncio.Event()
    app = tornado.web.Application([(r"/slow", _Slow)], tac_in_flight=in_flight, started=started)
    stop = asyncio.Event()
    port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    serving_task = asyncio.create_task(
        serve_until_signalled(app, port=0, stop=stop, ready=port.set_result, handle_signals=False)
    )
    client = Client(f"http://127.0.0.1:{await port}")
    try:
        request = asyncio.create_task(client.call("GET", "/slow"))
        await asyncio.wait_for(started.wait(), 5)
        assert in_flight.count == 1
        stop.set()
        answer = await request
        assert (answer.status, answer.body) == (200, {"done": True})
        await asyncio.wait_for(serving_task, 5)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", await port)
    finally:
        client.close()
