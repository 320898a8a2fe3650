"""The model layer against the core (issue 4), for our client only.

Run by ``python -m bench`` in fresh processes (``python -m bench.models URL USER``, the password
in ``BENCH_COUCH_PASSWORD``), each printing its measures as JSON.

Each model operation is paired with the core call a user of the raw API would make for the same
document shape: ``db.get(Item, id)`` vs ``get_doc(id)``, ``db.save(item)`` of a saved item (an
update with its rev) vs ``put_doc(doc)`` with ``_rev``, ``db.save(item)`` of a new item (an id
assigned) vs ``put_doc({"_id": new_id(), ...})``. The stored documents are ``Item.to_doc()``, so
both sides read and write exactly the same JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import gc
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson

import tor_async_couchdb as tac
from tor_async_couchdb._transport import MockRequest, MockTransport, Response

N_ITEMS = 200
TARGET = 1.25  # model <= TARGET x core, for each pair
PASSWORD_ENV = "BENCH_COUCH_PASSWORD"
PAIR_BLOCK = 20  # operations per block of a model/core pair
DB_NAME = "bench_ours_models"
PAIR_CALLS = 300  # operations of each side of a pair per round, at --scale 1
# (core op, model op) pairs.
PAIRS = (
    ("core_get", "model_get"),
    ("core_update", "model_update"),
    ("core_create", "model_create"),
    # For comparison: the save of a model that cannot take the plain-Python lane.
    ("core_update", "model_update_general"),
)
LABELS = {
    "core_get": "core `get_doc(id)`",
    "model_get": "model `db.get(Item, id)`",
    "core_update": "core `put_doc(doc)` (update, with `_rev`)",
    "model_update": "model `db.save(item)` (update, with rev)",
    "core_create": "core `put_doc(doc)` (create, `new_id()`)",
    "model_create": "model `db.save(item)` (create, id assigned)",
    "model_update_general": "model `db.save(item)` (update; the lane off: pydantic path)",
}
# By the model side of each pair.
PAIR_LABELS = {
    "model_get": "get (1 doc by id)",
    "model_update": "save/put, update (1 doc, with rev)",
    "model_create": "save/put, create (1 doc, new id)",
    "model_update_general": "for comparison: update through the pydantic path",
}
# The pairs the issue 4 target applies to (the last one is for comparison only).
TARGETED = ("model_get", "model_update", "model_create")


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Item(tac.Model, type_name="bench_item", version="1.0"):
    """Six typed fields: a str, an enum, a Decimal, a tz-aware datetime, a list, an int."""

    name: str
    color: Color
    price: Decimal
    updated_on: datetime
    tags: list[str]
    count: int = 0


def make_item(i: int, *, with_id: bool = True) -> Item:
    return Item(
        id=f"m{i:05d}" if with_id else None,
        name=f"Item number {i}: lorem ipsum dolor sit amet, consectetur adipiscing elit",
        color=list(Color)[i % 3],
        price=Decimal(f"{i}.25"),
        updated_on=datetime(2026, 11, 27, 12, 0, tzinfo=UTC) + timedelta(seconds=i),
        tags=["alpha", "beta", "gamma", f"tag{i % 10}"],
        count=i,
    )


def seed_docs() -> list[dict[str, Any]]:
    """Model documents ``m...`` and identical core documents ``c...`` (same shape, same size)."""
    docs = []
    for i in range(N_ITEMS):
        doc = make_item(i).to_doc()
        docs += [doc, {**doc, "_id": f"c{i:05d}"}]
    return docs


class ModelWorkload:
    """The paired operations, each as ``n`` sequential calls on one database handle."""

    def __init__(self, db: tac.Database) -> None:
        self.db = db
        self.cursor = 0
        self.items: list[Item] = []
        self.docs: list[dict[str, Any]] = []
        self.template = make_item(0, with_id=False)
        self.template_doc = self.template.to_doc()

    async def start(self) -> None:
        """Read the current revisions (untimed)."""
        self.items = [await self.db.get(Item, f"m{i:05d}") for i in range(N_ITEMS)]
        self.docs = [await self.db.get_doc(f"c{i:05d}") for i in range(N_ITEMS)]

    def _next(self) -> int:
        self.cursor = (self.cursor + 7919) % N_ITEMS
        return self.cursor

    async def core_get(self, n: int) -> None:
        for _ in range(n):
            await self.db.get_doc(f"c{self._next():05d}")

    async def model_get(self, n: int) -> None:
        for _ in range(n):
            await self.db.get(Item, f"m{self._next():05d}")

    async def core_update(self, n: int) -> None:
        docs = self.docs
        for _ in range(n):
            doc = docs[self._next()]
            answer = await self.db.put_doc(doc)
            doc["_rev"] = answer["rev"]

    async def model_update(self, n: int) -> None:
        items = self.items
        for _ in range(n):
            i = self._next()
            items[i] = await self.db.save(items[i])

    async def model_update_general(self, n: int) -> None:
        # Item without its plan: what a model with a validator, a constraint or a nested
        # model costs to save (tests/unit/test_fastlane.py: both paths write the same).
        plan = Item.__couch_fast__
        Item.__couch_fast__ = None
        try:
            await self.model_update(n)
        finally:
            Item.__couch_fast__ = plan

    async def core_create(self, n: int) -> None:
        template = self.template_doc
        for _ in range(n):
            await self.db.put_doc({"_id": tac.new_id(), **template})

    async def model_create(self, n: int) -> None:
        template = self.template
        for _ in range(n):
            await self.db.save(template)

    def operation(self, name: str) -> Callable[[int], Awaitable[None]]:
        method: Callable[[int], Awaitable[None]] = getattr(self, name)
        return method


async def timed_pair(work: ModelWorkload, pair: tuple[str, str], n: int, *, first: int) -> Any:
    """``n`` operations of each side of a model/core pair, in alternating blocks of
    PAIR_BLOCK (the side that starts a block alternating too), so that both sides run under
    the same conditions: on this shared machine, load from elsewhere changes the cost of an
    operation by 20-50% from one second to the next. Returns ``{op: (cpu µs/op, ops/s)}``."""
    cpu = dict.fromkeys(pair, 0.0)
    wall = dict.fromkeys(pair, 0.0)
    gc.collect()
    done = 0
    while done < n:
        size = min(PAIR_BLOCK, n - done)
        for op in pair if (done // PAIR_BLOCK + first) % 2 == 0 else pair[::-1]:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await work.operation(op)(size)
            cpu[op] += time.process_time() - cpu0
            wall[op] += time.perf_counter() - wall0
        done += size
    return {op: (cpu[op] / n * 1e6, n / wall[op]) for op in pair}


async def measure(url: str, auth: tuple[str, str], rounds: int, scale: float) -> Any:
    """Every pair once per round: ``{model op: {op: {"cpu_us": [per round], "ops_s": [per
    round]}}}`` with the pair's core op and model op."""
    found: dict[str, dict[str, dict[str, list[float]]]] = {
        model: {op: {"cpu_us": [], "ops_s": []} for op in (core, model)} for core, model in PAIRS
    }
    async with tac.CouchDB(url, auth=auth) as couch:
        work = ModelWorkload(couch.database(DB_NAME))
        await work.start()
        for op in dict.fromkeys(op for pair in PAIRS for op in pair):  # warm-up
            await work.operation(op)(10)
        for round_no in range(rounds):
            for pair in PAIRS:
                n = max(1, round(PAIR_CALLS * scale))
                timed = await timed_pair(work, pair, n, first=round_no % 2)
                for op, (cpu_us, ops_s) in timed.items():
                    found[pair[1]][op]["cpu_us"].append(cpu_us)
                    found[pair[1]][op]["ops_s"].append(ops_s)
    return found


# The pairs measured without network too: (core op, model op), n calls per round at scale 1.
OFFLINE_PAIRS = (("core_get", "model_get"), ("core_update", "model_update"))
OFFLINE_CALLS = 1500


async def measure_offline(rounds: int, scale: float) -> Any:
    """Client CPU per op of the get and update pairs against a MockTransport that answers at
    once (no socket, no server, no wait): the model layer's own work, in a tight loop.

    Compared with the pairs against the server, it shows how much more the same work costs
    when each call follows a wait for the network. Returns ``{op: [µs/op per round]}``.
    """
    stored = {**make_item(3).to_doc(), "_rev": "1-abc"}
    body = orjson.dumps(stored)
    saved = orjson.dumps({"ok": True, "id": stored["_id"], "rev": "2-abc"})

    def answer(request: MockRequest) -> Response:
        return Response(200, {"content-type": "application/json"}, saved if request.body else body)

    n = max(1, round(OFFLINE_CALLS * scale))
    found: dict[str, list[float]] = {op: [] for pair in OFFLINE_PAIRS for op in pair}
    async with tac.CouchDB("http://localhost:5984", transport=MockTransport(answer)) as couch:
        db = couch.database(DB_NAME)
        item, doc = Item.from_doc(stored), dict(stored)
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "core_get": lambda: db.get_doc(stored["_id"]),
            "model_get": lambda: db.get(Item, stored["_id"]),
            "core_update": lambda: db.put_doc(doc),
            "model_update": lambda: db.save(item),
        }
        for _ in range(rounds):
            for op, call in calls.items():
                gc.collect()
                cpu0 = time.process_time()
                for _ in range(n):
                    await call()
                found[op].append((time.process_time() - cpu0) / n * 1e6)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.models", description=__doc__)
    parser.add_argument("url")
    parser.add_argument("user")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--scale", type=float, default=2.0)
    args = parser.parse_args()
    auth = (args.user, os.environ[PASSWORD_ENV])
    measured = asyncio.run(measure(args.url, auth, args.rounds, args.scale))
    measured["offline"] = asyncio.run(measure_offline(args.rounds, args.scale))
    json.dump(measured, sys.stdout)


if __name__ == "__main__":
    main()
