"""The virtual users, and the ledger of what the service acknowledged to them."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .plan import Plan
from .stats import Recorder

COLORS = ("red", "green", "yellow", "orange", "purple")
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class Answer:
    """A request's outcome: ``status`` 0 when no answer came (the outcome is unknown)."""

    status: int
    body: Any = None
    seconds: float = 0.0

    @property
    def uncertain(self) -> bool:
        """Whether a write may or may not have happened (no answer, or a 5xx)."""
        return self.status == 0 or self.status >= 500


@dataclass(slots=True)
class Ledger:
    """What the service acknowledged, for the consistency check at the end.

    A fruit about to be deleted leaves ``alive`` before its DELETE is sent, so no other user
    picks it afterwards; one picked just before may meet a 404, which is then expected.
    """

    hot: list[str] = field(default_factory=list)
    alive: dict[str, str] = field(default_factory=dict)  # fruit id -> owner token
    deleted: set[str] = field(default_factory=set)
    deleting: set[str] = field(default_factory=set)  # no answer: maybe deleted
    eaters: dict[str, set[str]] = field(default_factory=dict)  # acknowledged
    maybe_eaters: dict[str, set[str]] = field(default_factory=dict)  # no clear answer
    home: dict[str, int] = field(default_factory=dict)  # fruit id -> instance that made it

    def gone(self, fruit_id: str) -> bool:
        return fruit_id in self.deleted or fruit_id in self.deleting or fruit_id not in self.alive


class Client:
    """The service's HTTP API for the load: one keep-alive session, at most ``concurrency``
    requests in flight, each answer timed."""

    def __init__(self, plan: Plan, url: str | None = None) -> None:
        self.base = (url or plan.urls[0]).rstrip("/")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=plan.concurrency),
            timeout=aiohttp.ClientTimeout(total=30),
        )
        self._slots = asyncio.Semaphore(plan.concurrency)

    async def close(self) -> None:
        await self._session.close()

    async def send(self, method: str, path: str, body: Any = None, **headers: str) -> Answer:
        """Send one request; the answer says how long it took (waiting for a slot apart)."""
        sent = dict(headers, **(JSON_HEADERS if body is not None else {}))
        data = json.dumps(body) if body is not None else None
        async with self._slots:
            started = time.perf_counter()
            answer = await self._fetch(method, path, data, sent)
            return dataclasses.replace(answer, seconds=time.perf_counter() - started)

    async def _fetch(
        self, method: str, path: str, data: str | None, headers: dict[str, str]
    ) -> Answer:
        try:
            async with self._session.request(
                method, self.base + path, data=data, headers=headers
            ) as response:
                text = await response.text()
                is_json = response.content_type == "application/json"
                decoded = json.loads(text) if text and is_json else None
                return Answer(response.status, decoded)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return Answer(0)


class VirtualUser:
    """One user: picks an operation by the plan's mix, does it, again, until told to stop."""

    _tags = itertools.count()

    def __init__(
        self,
        number: int,
        plan: Plan,
        client: Client,
        ledger: Ledger,
        recorder: Recorder,
        *,
        instance: int = 0,
    ) -> None:
        self.number = number
        # With several instances a user keeps to one, and reads, changes and deletes only the
        # fruits made there (and the hot set): a fruit made elsewhere may not have replicated
        # yet, and a delete concurrent with another instance's update would be undone by the
        # merge (update wins), which is the declared policy, not a lost write.
        self.instance = instance
        self.recorder = recorder
        self.plan = plan
        self.client = client
        self.ledger = ledger
        self.rng = random.Random(None if plan.seed is None else plan.seed + number)

    async def run(self, stop: asyncio.Event, budget: itertools.count[int] | None) -> None:
        while not stop.is_set():
            if budget is not None and next(budget) >= (self.plan.requests or 0):
                stop.set()
                return
            operation = self.plan.pick(self.rng)
            await getattr(self, operation)()

    def _mine(self) -> list[str]:
        home = self.ledger.home
        return [f for f in self.ledger.alive if home.get(f, 0) == self.instance]

    def _some_fruit(self) -> str:
        pool = self._mine() if self.ledger.alive and self.rng.random() < 0.7 else []
        return self.rng.choice(pool or self.ledger.hot)

    async def create(self) -> None:
        answer = await self.client.send("POST", "/v1.0/fruits", {"color": self.rng.choice(COLORS)})
        self._record("create", answer)
        if answer.status == 201:
            self.ledger.alive[answer.body["fruit_id"]] = answer.body["owner_token"]
            self.ledger.home[answer.body["fruit_id"]] = self.instance

    async def read(self) -> None:
        fruit_id = self._some_fruit()
        answer = await self.client.send("GET", f"/v1.0/fruits/{fruit_id}")
        self._record("read", answer, fruit_id)

    async def update(self) -> None:
        fruit_id = self._some_fruit()
        body = {"color": self.rng.choice(COLORS)}
        answer = await self.client.send("PUT", f"/v1.0/fruits/{fruit_id}", body)
        self._record("update", answer, fruit_id)

    async def delete(self) -> None:
        mine = self._mine()
        if not mine:
            return await self.create()
        fruit_id = self.rng.choice(mine)
        token = self.ledger.alive.pop(fruit_id)
        self.ledger.deleting.add(fruit_id)
        answer = await self.client.send(
            "DELETE", f"/v1.0/fruits/{fruit_id}", **{"X-Owner-Token": token}
        )
        self._record("delete", answer)
        if answer.status == 204:
            self.ledger.deleting.discard(fruit_id)
            self.ledger.deleted.add(fruit_id)
        return None

    async def list(self) -> None:
        query = "?limit=20" + (
            f"&color={self.rng.choice(COLORS)}" if self.rng.random() < 0.5 else ""
        )
        self._record("list", await self.client.send("GET", "/v1.0/fruits" + query))

    async def eat(self) -> None:
        fruit_id = self.rng.choice(self.ledger.hot)
        tag = f"u{self.number}-{next(self._tags)}"
        answer = await self.client.send("POST", f"/v1.0/fruits/{fruit_id}/eaten", {"by": tag})
        self._record("eat", answer)
        if answer.status == 200:
            self.ledger.eaters.setdefault(fruit_id, set()).add(tag)
        elif answer.uncertain:
            self.ledger.maybe_eaters.setdefault(fruit_id, set()).add(tag)

    def _record(self, operation: str, answer: Answer, fruit_id: str | None = None) -> None:
        # A 404 for a fruit deleted meanwhile is the right answer, not an error: it is
        # measured apart, so that errors by status show only wrong answers.
        deleted = fruit_id is not None and fruit_id not in self.ledger.hot
        if answer.status == 404 and deleted and self.ledger.gone(str(fruit_id)):
            operation += "_of_deleted"
        self.recorder.record(operation, answer.status, answer.seconds)
