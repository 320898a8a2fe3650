"""Service-test helpers: a fruit store running in the test's loop, and an HTTP client of it.

Test modules import the fixtures they use (``from support.fruit_service import client``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import tornado.httpclient
from samples.fruit_store import keys
from samples.fruit_store.app import Limits, Service, make_service
from samples.fruit_store.install import install

import tor_async_couchdb as tac
from tor_async_couchdb.tornado import ServiceMetrics, serve_until_signalled

if TYPE_CHECKING:
    from tor_async_couchdb.testing import CouchServer

_names = itertools.count()
# One key ring for the test session (made here, never written anywhere).
TEST_KEYRING = tac.KeyRing([tac.Key("test-1", b"\x42" * 32)], active="test-1")


def unique_db_name() -> str:
    """A database name no other test (or run against a shared server) uses."""
    return f"fruits_{os.getpid()}_{next(_names)}"


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: status, headers and the body (decoded JSON, or text)."""

    status: int
    headers: Mapping[str, str]
    body: Any

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class Client:
    """A small HTTP client of one service (Tornado's, one instance of its own)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self._http = tornado.httpclient.AsyncHTTPClient(force_instance=True)

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        seconds: float = 20.0,
    ) -> Answer:
        sent_headers = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            sent_headers.setdefault("Content-Type", "application/json")
        if data is None and method in ("POST", "PUT"):
            data = b""
        answer = await self._http.fetch(
            self.base + path,
            method=method,
            body=data,
            headers=sent_headers,
            raise_error=False,
            request_timeout=seconds,
        )
        text = answer.body.decode() if answer.body else ""
        kind = answer.headers.get("Content-Type", "")
        decoded = json.loads(text) if kind.startswith("application/json") else text
        return Answer(answer.code, answer.headers, decoded)

    def close(self) -> None:
        self._http.close()


@dataclass(slots=True)
class Running:
    """A fruit store serving on ``client.base``."""

    service: Service
    client: Client
    protection: tac.Protection

    @property
    def metrics(self) -> ServiceMetrics:
        return self.service.metrics


@pytest.fixture
async def running_service(couch_server: CouchServer) -> AsyncIterator[Running]:
    """A fruit store on a free port, over a new database deleted afterwards."""
    async with serving(couch_server.url, couch_server.auth) as running:
        yield running
        await running.service.store.db.delete_database(missing_ok=True)


class serving:  # noqa: N801 - used like a function: async with serving(...) as running
    """Start a fruit store over ``url`` (on a free port) for the ``async with`` block."""

    def __init__(
        self,
        url: str,
        auth: tuple[str, str] | None,
        *,
        install: bool = True,
        limits: Limits | None = None,
        timeouts: tac.Timeouts | None = None,
        node_id: str = "test-node",
        db_name: str | None = None,
    ) -> None:
        self.url, self.auth, self.install = url, auth, install
        self.node_id, self.db_name = node_id, db_name or unique_db_name()
        self.protection = tac.Protection.from_keyring(TEST_KEYRING)
        self.limits = limits or Limits(request_timeout=3.0, health_timeout=1.0)
        self.timeouts = timeouts or tac.Timeouts(connect=1.0, read=10.0, pool=2.0)
        self._stop = asyncio.Event()

    async def __aenter__(self) -> Running:
        metrics = ServiceMetrics()
        self._couch = tac.CouchDB(
            self.url,
            auth=self.auth,
            timeouts=self.timeouts,
            retry=tac.RetryPolicy(max_retries=1, backoff=0.01),
            on_request=metrics.record_couch_request,
            codecs=keys.codecs(self.protection),
        )
        service = make_service(
            self._couch,
            self.db_name,
            metrics,
            protection=self.protection,
            clock=tac.HybridClock(self.node_id),
            limits=self.limits,
        )
        if self.install:
            await install(self._couch, self.db_name, self.protection)
        port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(
            serve_until_signalled(
                service.app, port=0, ready=port.set_result, stop=self._stop, handle_signals=False
            )
        )
        bound = await asyncio.wait_for(asyncio.shield(port), 10)
        self._client = Client(f"http://127.0.0.1:{bound}")
        return Running(service, self._client, self.protection)

    async def __aexit__(self, *exc: object) -> None:
        self._client.close()
        self._stop.set()
        await asyncio.wait_for(self._task, 15)
        await self._couch.aclose()


@pytest.fixture
async def client(running_service: Running) -> Client:
    return running_service.client
