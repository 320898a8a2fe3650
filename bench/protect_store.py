"""Store-level cost of protection (issue 12): ``python -m bench.protect_store``.

Client CPU per model ``db.get`` and ``db.save`` (an update, with its rev) against the embedded
server, for one nine-field model in three set-ups, each on its own database:

* ``plain``: no codecs (the baseline);
* ``signed``: the same model, signed and verified (``codecs=[protection.signature]``);
* ``encrypted``: the same fields with two of them ``Encrypted()`` (one with a blind index),
  and signed (``codecs=Protection.from_keyring(ring)``);
* ``general``: signed, the same fields, two of them carrying an inert marker of no codec. A
  marker the save lane does not know keeps a model off the lane (an ``Encrypted()`` field
  must never be written by it), so an encrypted model is saved through pydantic: ``general``
  is that path without the encryption, so that encrypted/general is the cost of encrypting
  two fields alone, and general/signed the cost of leaving the lane.

The parent starts the embedded server (in memory), seeds the databases, then runs
``--processes`` fresh child processes one after the other (``python -m bench.protect_store
--child URL USER``, the password in ``BENCH_COUCH_PASSWORD``), each running ``--rounds`` rounds.
In a round each operation of the three set-ups runs in alternating blocks (as
``bench/models.py`` does), so all see the same load; the ratios are computed per round and the
median over every round of every process is reported, with the median CPU per operation. The
target: signing and verifying add at most 15% client CPU to a model get or save; encrypting
two fields at most 25%. argon2id is timed apart, per hash (slow on purpose, in a thread).

``--write FILE`` writes the markdown table too (``bench/PROTECT.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import tor_async_couchdb as tac
from tor_async_couchdb._protect import Key, KeyRing
from tor_async_couchdb.devserver import DevServer

PASSWORD_ENV = "BENCH_COUCH_PASSWORD"
N_ITEMS = 100
BLOCK = 20  # operations per block of one set-up
CALLS = 200  # operations of each set-up per round and operation
SETUPS = ("plain", "signed", "general", "encrypted")
OPERATIONS = ("get", "save")
SIGN_TARGET = 1.15
ENCRYPT_TARGET = 1.25


class Plain(tac.Model, type_name="bench_customer", version="1.0"):
    customer_id: Annotated[str, tac.Indexed()]
    name: str
    email: Annotated[str, tac.Indexed()]
    phone: str
    city: str
    visits: int
    balance: float
    tags: list[str]
    updated_on: datetime


class Secret(tac.Model, type_name="bench_secret", version="1.0"):
    customer_id: Annotated[str, tac.Indexed()]
    name: str
    email: Annotated[str, tac.Indexed(), tac.Encrypted(blind_index=True)]
    phone: Annotated[str, tac.Encrypted()]
    city: str
    visits: int
    balance: float
    tags: list[str]
    updated_on: datetime


@dataclass(frozen=True, slots=True)
class Inert(tac.FieldMarker):
    """A marker no codec applies: it only keeps the model off the save lane."""


class General(tac.Model, type_name="bench_general", version="1.0"):
    customer_id: Annotated[str, tac.Indexed()]
    name: str
    email: Annotated[str, tac.Indexed(), Inert()]
    phone: Annotated[str, Inert()]
    city: str
    visits: int
    balance: float
    tags: list[str]
    updated_on: datetime


MODELS: dict[str, type[tac.Model]] = {
    "plain": Plain,
    "signed": Plain,
    "general": General,
    "encrypted": Secret,
}


def fields(i: int) -> dict[str, Any]:
    return {
        "id": f"c{i:05d}",
        "customer_id": f"c-{i:04d}",
        "name": "Ada Lovelace",
        "email": f"ada{i}@example.com",
        "phone": "+44 20 7946 0000",
        "city": "London",
        "visits": 42,
        "balance": 1234.5,
        "tags": ["gold", "newsletter"],
        "updated_on": datetime(2026, 12, 1, 9, 40, tzinfo=UTC),
    }


def protection() -> tac.Protection:
    ring = KeyRing([Key("bench", bytes(range(32)))], active="bench")
    return tac.Protection.from_keyring(ring)


def handles(couch: tac.CouchDB) -> dict[str, tac.Database]:
    codecs = protection()
    return {
        "plain": couch.database("bench_protect_plain", codecs=()),
        "signed": couch.database("bench_protect_signed", codecs=[codecs.signature]),
        "general": couch.database("bench_protect_general", codecs=[codecs.signature]),
        "encrypted": couch.database("bench_protect_encrypted", codecs=codecs),
    }


async def seed(url: str, auth: tuple[str, str]) -> None:
    async with tac.CouchDB(url, auth=auth) as couch:
        for setup, db in handles(couch).items():
            await db.create(exists_ok=True)
            for i in range(N_ITEMS):
                await db.save(MODELS[setup](**fields(i)))


class Workload:
    """``n`` sequential gets or saves of one set-up's models."""

    def __init__(self, db: tac.Database, model: type[tac.Model]) -> None:
        self.db, self.model = db, model
        self.items: list[tac.Model] = []
        self.cursor = 0

    async def start(self) -> None:
        self.items = [await self.db.get(self.model, f"c{i:05d}") for i in range(N_ITEMS)]

    def _next(self) -> int:
        self.cursor = (self.cursor + 37) % N_ITEMS
        return self.cursor

    async def get(self, n: int) -> None:
        for _ in range(n):
            await self.db.get(self.model, f"c{self._next():05d}")

    async def save(self, n: int) -> None:
        for _ in range(n):
            i = self._next()
            self.items[i] = await self.db.save(self.items[i])


async def timed(works: dict[str, Workload], operation: str, n: int, first: int) -> dict[str, float]:
    """CPU µs per operation of each set-up, in alternating blocks (the order rotating)."""
    cpu = dict.fromkeys(works, 0.0)
    gc.collect()
    done, block = 0, first
    while done < n:
        size = min(BLOCK, n - done)
        turn = block % len(works)
        order = list(works)[turn:] + list(works)[:turn]
        for setup in order:
            call: Callable[[int], Awaitable[None]] = getattr(works[setup], operation)
            start = time.process_time()
            await call(size)
            cpu[setup] += time.process_time() - start
        done += size
        block += 1
    return {setup: cpu[setup] / n * 1e6 for setup in works}


async def child(url: str, auth: tuple[str, str], rounds: int) -> dict[str, Any]:
    found: dict[str, Any] = {f"{op}_{s}": [] for op in OPERATIONS for s in SETUPS}
    async with tac.CouchDB(url, auth=auth) as couch:
        works = {s: Workload(db, MODELS[s]) for s, db in handles(couch).items()}
        for work in works.values():
            await work.start()
            await work.get(10)  # warm-up
            await work.save(10)
        for round_no in range(rounds):
            for op in OPERATIONS:
                for setup, us in (await timed(works, op, CALLS, round_no)).items():
                    found[f"{op}_{setup}"].append(us)
        found["argon2_ms"] = await argon2_ms(rounds)
    return found


async def argon2_ms(rounds: int) -> list[float]:
    """CPU ms per argon2id hash at the default policy (OWASP's minimum), in its thread."""
    codec = tac.HashedCodec()
    times = []
    for _ in range(rounds):
        start = time.process_time()
        await codec.hash("correct horse battery staple")
        times.append((time.process_time() - start) * 1e3)
    return times


def run_children(url: str, auth: tuple[str, str], processes: int, rounds: int) -> list[Any]:
    env = {**os.environ, PASSWORD_ENV: auth[1]}
    command = [sys.executable, "-m", "bench.protect_store", "--child", url, auth[0]]
    results = []
    for _ in range(processes):
        done = subprocess.run(
            [*command, "--rounds", str(rounds)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=900,
        )
        results.append(json.loads(done.stdout))
    return results


def summarize(results: list[Any]) -> dict[str, Any]:
    def all_rounds(key: str) -> list[float]:
        return [v for r in results for v in r[key]]

    summary: dict[str, Any] = {"rounds": len(all_rounds("get_plain"))}
    for op in OPERATIONS:
        for setup in SETUPS:
            summary[f"{op}_{setup}_us"] = statistics.median(all_rounds(f"{op}_{setup}"))
        rounds = zip(*(all_rounds(f"{op}_{setup}") for setup in SETUPS), strict=True)
        ratios = [(s / p, e / g, g / s, e / p) for p, s, g, e in rounds]
        for n, name in enumerate(("sign", "encrypt", "lane", "total")):
            summary[f"{op}_{name}_ratio"] = statistics.median(r[n] for r in ratios)
    summary["argon2_ms"] = statistics.median(all_rounds("argon2_ms"))
    return summary


def render(summary: dict[str, Any], command: str) -> str:
    def pct(ratio: float) -> str:
        return f"{(ratio - 1) * 100:+.1f}%"

    lines = [
        "| operation | plain µs | signed µs | signed, off the lane µs | signed + 2 encrypted µs "
        f"| signing adds (target ≤ {pct(SIGN_TARGET)}) | encrypting two fields adds (target ≤ "
        f"{pct(ENCRYPT_TARGET)}) | leaving the save lane adds | all protection vs plain |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for op, label in (("get", "model `db.get`"), ("save", "model `db.save` (update)")):
        sign, enc = summary[f"{op}_sign_ratio"], summary[f"{op}_encrypt_ratio"]
        lines.append(
            f"| {label} | {summary[f'{op}_plain_us']:.1f} | {summary[f'{op}_signed_us']:.1f} | "
            f"{summary[f'{op}_general_us']:.1f} | "
            f"{summary[f'{op}_encrypted_us']:.1f} | {pct(sign)} "
            f"{'met' if sign <= SIGN_TARGET else 'MISSED'} | {pct(enc)} "
            f"{'met' if enc <= ENCRYPT_TARGET else 'MISSED'} | "
            f"{pct(summary[f'{op}_lane_ratio'])} | {pct(summary[f'{op}_total_ratio'])} |"
        )
    lines += [
        "",
        f"argon2id at the default policy (m=19 MiB, t=2, p=1): {summary['argon2_ms']:.1f} ms "
        "CPU per hash (in a thread, excluded from the ratios).",
        "",
        f"Client CPU per operation, medians of {summary['rounds']} rounds (ratios per round, "
        f"then the median); command: `{command}`; load average before the run: "
        f"{summary['load']:.2f}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.protect_store", description=__doc__)
    parser.add_argument("--child", nargs=2, metavar=("URL", "USER"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    if args.child:
        url, user = args.child
        auth = (user, os.environ[PASSWORD_ENV])
        json.dump(asyncio.run(child(url, auth, args.rounds)), sys.stdout)
        return
    load = os.getloadavg()[0]
    with DevServer(in_memory=True) as server:
        asyncio.run(seed(server.url, server.auth))
        results = run_children(server.url, server.auth, args.processes, args.rounds)
    summary = {**summarize(results), "load": load}
    command = f"python -m bench.protect_store --processes {args.processes} --rounds {args.rounds}"
    table = render(summary, command)
    print(table)
    if args.write is not None:
        args.write.write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
