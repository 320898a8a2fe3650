"""Benchmark: heal-to-convergence time of 1,000 conflicted documents on three servers, and
the reconciler's client CPU per resolved document.

Command (from the repository root): ``.venv/bin/python -m bench.reconcile [--docs 1000]``

Three embedded servers stand in for three data centers. Every document is written on the
first, copied to the other two, then changed in all three while they are cut off from each
other (a counter increment, a set add and a register write in each), so that healing gives
each document three leaves everywhere. A reconciler runs in each data center, each in a
process of its own (as in a deployment), started before the heal and following the feed from
that point. The clock starts when the six continuous replications are created and stops when
all three servers hold the same winning revision of every document and none has conflicts.
Each reconciler process reports its own CPU time (``time.process_time()`` from its start of
work to its stop, imports excluded) and its metrics; CPU per resolved document is the sum of
the three divided by the number of documents.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

from pydantic import Field

import tor_async_couchdb as tac
from tor_async_couchdb._merge import HybridClock, Mergeable, ORSet, PNCounter, seal
from tor_async_couchdb._reconcile import MemoryCheckpoint, Reconciler
from tor_async_couchdb.devserver import DevServer

_DB = "bench_fruit"


class BenchFruit(Mergeable, type_name="bench_fruit", version="1.0"):
    color: str = "green"
    eaten: PNCounter = Field(default_factory=PNCounter)
    tags: ORSet[str] = Field(default_factory=ORSet)


# --- the reconciler of one data center, in its own process ---------------------------------


async def _work(url: str, since: str) -> dict[str, Any]:
    user, password = os.environ["BENCH_USER"], os.environ["BENCH_PASSWORD"]
    async with tac.CouchDB(url, auth=(user, password)) as couch:
        db = couch.database(_DB)
        reconciler = Reconciler(
            db,
            BenchFruit,
            checkpoint=MemoryCheckpoint(since),
            checkpoint_every=1000,
            settle=float(os.environ.get("BENCH_SETTLE", "0.5")),
            defer=float(os.environ.get("BENCH_DEFER_THIS", "0")),
        )
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, reconciler.stop)
        print("ready", flush=True)
        started = time.process_time()
        await reconciler.run()
        cpu = time.process_time() - started
        metrics = reconciler.metrics
        return {"cpu": cpu, "resolved": metrics.resolved, "raced": metrics.raced,
                "inspected": metrics.inspected, "changes": metrics.changes,
                "failed": metrics.failed, "errors": metrics.errors,
                "conflicts": metrics.conflicts}  # fmt: skip


def _worker(url: str, since: str) -> None:
    profile = os.environ.get("BENCH_PROFILE")  # a folder: one pyinstrument text report each
    if not profile:
        print(json.dumps(asyncio.run(_work(url, since))), flush=True)
        return
    from pyinstrument import Profiler

    with Profiler(async_mode="disabled") as profiler:
        report = asyncio.run(_work(url, since))
    port = url.rsplit(":", 1)[-1].strip("/")
    with open(os.path.join(profile, f"reconciler-{port}.txt"), "w", encoding="utf-8") as out:
        out.write(profiler.output_text(unicode=False, color=False))
    print(json.dumps(report), flush=True)


# --- the coordinator -------------------------------------------------------------------------


async def _seed(dbs: Sequence[tac.Database], couches: Sequence[tac.CouchDB], n: int) -> None:
    clock = HybridClock("seed")
    docs = []
    for number in range(n):
        fruit = BenchFruit(id=f"fruit-{number:05d}")
        seal(fruit, clock)
        docs.append(fruit.to_doc())
    for start in range(0, n, 500):
        await dbs[0].bulk_docs(docs[start : start + 500])
    for target in couches[1:]:
        await couches[0].replicate(_DB, f"{target.url}/{_DB}")


async def _diverge(db: tac.Database, number: int) -> None:
    """Change every document in one data center, cut off from the others."""
    clock = HybridClock(f"dc{number}-writer")
    rows = [row async for row in db.all_docs(include_docs=True)]
    changed = []
    for row in rows:
        fruit = BenchFruit.from_doc(row["doc"])
        fruit.eaten.add(number + 1)
        fruit.tags.add(f"dc{number}")
        fruit.color = f"dc{number}"
        seal(fruit, clock)
        changed.append(fruit.to_doc())
    for start in range(0, len(changed), 500):
        results = await db.bulk_docs(changed[start : start + 500])
        assert all(result.ok for result in results)


async def _state(db: tac.Database) -> dict[str, tuple[str, bool]]:
    return {
        row["id"]: (row["value"]["rev"], "_conflicts" in row["doc"])
        async for row in db.all_docs(include_docs=True, conflicts=True)
    }


async def _converged(dbs: Sequence[tac.Database]) -> bool:
    states = [await _state(db) for db in dbs]
    conflicted = any(flag for state in states for _, flag in state.values())
    return not conflicted and all(state == states[0] for state in states)


async def _wait_until_converged(dbs: Sequence[tac.Database]) -> None:
    while True:
        if await _converged(dbs):
            return
        await asyncio.sleep(0.2)


def _start_worker(server: DevServer, since: str, number: int) -> subprocess.Popen[str]:
    env = {**os.environ, "BENCH_USER": server.user, "BENCH_PASSWORD": server.password}
    # BENCH_DEFER=<seconds>: the first data center resolves at once, the others defer.
    env["BENCH_DEFER_THIS"] = "0" if number == 0 else os.environ.get("BENCH_DEFER", "0")
    command = [sys.executable, "-m", "bench.reconcile", "--worker", server.url, since]
    worker = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    assert worker.stdout is not None
    if worker.stdout.readline().strip() != "ready":
        raise RuntimeError("a reconciler process did not start")
    return worker


async def _run(n: int) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        servers = [await stack.enter_async_context(DevServer(in_memory=True)) for _ in range(3)]
        couches = [
            await stack.enter_async_context(tac.CouchDB(s.url, auth=s.auth)) for s in servers
        ]
        dbs = [couch.database(_DB) for couch in couches]
        for db in dbs:
            await db.create()
        await _seed(dbs, couches, n)
        for number, db in enumerate(dbs):
            await _diverge(db, number)
        sinces = [str((await db.info())["update_seq"]) for db in dbs]
        workers = [
            _start_worker(s, since, number)
            for number, (s, since) in enumerate(zip(servers, sinces, strict=True))
        ]
        try:
            healed = time.perf_counter()
            for source in servers:
                for target in servers:
                    if source is not target:
                        await couches[servers.index(source)].schedule_replication(
                            f"{source.port}-{target.port}", f"{source.url}/{_DB}",
                            f"{target.url}/{_DB}",
                        )  # fmt: skip
            await _wait_until_converged(dbs)
            seconds = time.perf_counter() - healed
        finally:
            reports = [_stop_worker(worker) for worker in workers]
        fruit = BenchFruit.from_doc(await dbs[2].get_doc("fruit-00000"))
        assert fruit.eaten.value == 6, fruit.eaten
        assert fruit.tags.value == {"dc0", "dc1", "dc2"}
        return {"docs": n, "seconds": seconds, "reconcilers": reports}


def _stop_worker(worker: subprocess.Popen[str]) -> dict[str, Any]:
    worker.send_signal(signal.SIGTERM)
    out, _ = worker.communicate(timeout=60)
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--worker", nargs=2, metavar=("URL", "SINCE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(*args.worker)
        return
    result = asyncio.run(_run(args.docs))
    cpu = sum(report["cpu"] for report in result["reconcilers"])
    resolved = sum(report["resolved"] for report in result["reconcilers"])
    print(f"{result['docs']} conflicted documents (3 leaves each) on 3 servers")
    print(f"heal to convergence: {result['seconds']:.1f} s")
    print(f"reconciler CPU: {cpu:.2f} s in all, {cpu / result['docs'] * 1e6:.0f} µs per document")
    print(f"resolutions written: {resolved} (the rest found already resolved by a peer)")
    for number, report in enumerate(result["reconcilers"]):
        print(f"  dc{number}: {json.dumps(report)}")


if __name__ == "__main__":
    main()
