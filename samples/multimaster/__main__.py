"""The multi-master demo: ``python -m samples.multimaster [--instances 3] [--duration 30]``.

Starts one embedded server per instance (each stands for a data center), installs the fruit
store's database on each with the installer, connects every pair with continuous replication
both ways (``tac.ops.setup_replication``), and runs a fruit store on each, with its own clock
(node id ``dc1``, ``dc2``...) and its own reconciler. All share one key ring, generated for the
run. Then the load generator drives every instance at once, most of it increments of a shared
hot set; afterwards the demo waits until every server holds the same documents with no
conflict left, and checks through each instance that no acknowledged write was lost.

``--serve`` skips the load: it prints the URLs and serves until Ctrl-C (drive it with
``./scripts/loadgen --url URL1,URL2,URL3``). Exits 1 if it does not converge, loses a write
or answers a 5xx.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

import tor_async_couchdb as tac
from tor_async_couchdb.devserver import DevServer
from tor_async_couchdb.tornado import ServiceMetrics, serve_until_signalled

from ..fruit_store import keys, logs
from ..fruit_store.__main__ import reconciling
from ..fruit_store.app import Limits, Service, make_service
from ..fruit_store.install import install
from ..loadgen import __main__ as loadgen
from ..loadgen import display
from ..loadgen.plan import Plan, parse_mix

logger = logging.getLogger("samples.multimaster")
DB = "fruit_store"
# Mostly increments of the hot set (counter and set, merged), some colour changes of it
# (last writer wins), creates, reads and lists; deletes only of fruits an instance made.
DEFAULT_MIX = "create=5,read=15,update=10,delete=2,list=3,eat=65"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m samples.multimaster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--instances", type=int, choices=(2, 3), default=3)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=30)
    parser.add_argument("--hot-set", type=int, default=3)
    parser.add_argument("--mix", type=parse_mix, default=parse_mix(DEFAULT_MIX))
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--converge-within",
        type=float,
        default=180.0,
        help="seconds to wait for convergence after the load",
    )
    parser.add_argument("--report", type=Path, default=None, help="write the report (JSON)")
    parser.add_argument("--state-dir", type=Path, default=Path(".run/multimaster"))
    parser.add_argument("--serve", action="store_true", help="no load: serve until Ctrl-C")
    parser.add_argument("--no-live", action="store_true", help="no live display")
    return parser.parse_args(argv)  # fmt: skip


@dataclass(slots=True)
class Instance:
    """One data center: its server, client, fruit store and reconciler."""

    name: str
    server: DevServer
    couch: tac.CouchDB
    service: Service
    reconciler: tac.Reconciler | None = None
    url: str = ""

    @property
    def db(self) -> tac.Database:
        return self.service.store.db

    @property
    def db_url(self) -> str:
        # No credentials: the embedded server ignores them in the object form of a
        # replication end, and its databases are public (see connect).
        return f"{self.server.url}/{DB}"


async def open_instance(
    stack: AsyncExitStack, number: int, server: DevServer, protection: tac.Protection
) -> Instance:
    metrics = ServiceMetrics()
    couch = await stack.enter_async_context(
        tac.CouchDB(
            server.url,
            auth=server.auth,
            timeouts=tac.Timeouts(connect=2.0, read=10.0, pool=5.0),
            retry=tac.RetryPolicy(max_retries=2, backoff=0.05, max_backoff=0.5),
            on_request=metrics.record_couch_request,
            codecs=keys.codecs(protection),
        )
    )
    await install(couch, DB, protection, guarded=False)  # see install_spec
    name = f"dc{number}"
    service = make_service(
        couch, DB, metrics, protection=protection, clock=tac.HybridClock(name), limits=Limits()
    )
    instance = Instance(name, server, couch, service)
    instance.reconciler = await stack.enter_async_context(reconciling(service, enabled=True))
    return instance


async def connect(instances: Sequence[Instance]) -> int:
    """Continuous replication both ways between every pair; the number of replications.

    Each server pushes to every other, by bare database URLs. WORKAROUND (embedded server):
    ``tac.ops.setup_replication`` writes its ends in CouchDB's object form (``{"url": ...,
    "headers": {"Authorization": ...}}``), which pouchdb-server's replicator does not follow
    continuously; against CouchDB use it (or ``tor-async-couchdb replicate``) instead.
    """
    count = 0
    for source in instances:
        for target in instances:
            if source is not target:
                doc_id = f"{source.name}-to-{target.name}"
                await source.couch.schedule_replication(doc_id, source.db_url, target.db_url)
                count += 1
    return count


@contextlib.asynccontextmanager
async def serving(instances: Sequence[Instance], stop: asyncio.Event) -> AsyncIterator[None]:
    """Every instance's service on a free port for the block; ``instance.url`` set."""
    loop = asyncio.get_running_loop()
    tasks = []
    for instance in instances:
        port: asyncio.Future[int] = loop.create_future()
        tasks.append(asyncio.create_task(serve_until_signalled(
            instance.service.app, port=0, ready=port.set_result, stop=stop, handle_signals=False
        )))  # fmt: skip
        instance.url = f"http://127.0.0.1:{await asyncio.wait_for(port, 10)}"
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def snapshot(db: tac.Database) -> tuple[dict[str, dict[str, Any]], int]:
    """Every fruit document as stored (by id), and how many have conflicts."""
    docs: dict[str, dict[str, Any]] = {}
    conflicted = 0
    async for row in db.all_docs(include_docs=True, conflicts=True):
        doc = row.get("doc")
        if doc is None or row["id"].startswith("_"):
            continue
        conflicted += "_conflicts" in doc
        docs[row["id"]] = doc
    return docs, conflicted


async def converge(instances: Sequence[Instance], within: float) -> dict[str, Any]:
    """Wait until every server holds the same documents, same revisions, no conflicts."""
    started = time.monotonic()
    while True:
        snapshots = [await snapshot(instance.db) for instance in instances]
        first = snapshots[0][0]
        differing = sum(
            1
            for doc_id in set().union(*(docs for docs, _ in snapshots))
            if len({json.dumps(docs.get(doc_id), sort_keys=True) for docs, _ in snapshots}) > 1
        )
        conflicts = sum(conflicted for _, conflicted in snapshots)
        elapsed = time.monotonic() - started
        if (differing == 0 and conflicts == 0) or elapsed > within:
            return {
                "converged": differing == 0 and conflicts == 0,
                "seconds": round(elapsed, 2),
                "documents": len(first),
                "documents_differing": differing,
                "conflicts_left": conflicts,
                "reconcilers": {i.name: _reconciler_json(i) for i in instances},
                "merged_before_write": {
                    i.name: i.service.metrics.counter("conflicts_merged_before_write")
                    for i in instances
                },
            }
        await asyncio.sleep(0.5)


def _reconciler_json(instance: Instance) -> dict[str, Any]:
    if instance.reconciler is None:
        return {}
    m = instance.reconciler.metrics
    return {"conflicts": m.conflicts, "resolved": m.resolved, "raced": m.raced,
            "quarantined": m.quarantined, "unresolvable": m.unresolvable,
            "failed": m.failed}  # fmt: skip


def announce(instances: Sequence[Instance], keys_at: str) -> None:
    urls = ",".join(i.url for i in instances)
    lines = [f"{i.name}: fruit store on {i.url} (embedded server {i.server.url})"
             for i in instances]  # fmt: skip
    first, second = instances[0].url, instances[1].url
    lines += [
        f"keys: {keys_at} (shared by every instance)",
        f"replication: continuous, both ways, between every pair ({len(instances)} servers)",
        f"try (create on {instances[0].name}, then list on {instances[1].name}, which "
        "replication feeds):",
        f"  curl -s -X POST -H 'Content-Type: application/json' -d '{{\"color\": \"red\"}}' "
        f"{first}/v1.0/fruits",
        f"  curl -s '{second}/v1.0/fruits?limit=5'",
        f"  ./scripts/loadgen --url {urls}",
    ]
    print("\n".join(lines), flush=True)


async def run(args: argparse.Namespace, servers: Sequence[DevServer]) -> int:
    ring = keys.generate_keyring(keys.keyring_path(args.state_dir))
    protection = tac.Protection.from_keyring(ring)
    keys_at = f"{keys.keyring_path(args.state_dir)} (generated for this run)"
    stop = asyncio.Event()
    async with AsyncExitStack() as stack:
        instances = [await open_instance(stack, n + 1, server, protection)
                     for n, server in enumerate(servers)]  # fmt: skip
        await connect(instances)
        async with serving(instances, stop):
            announce(instances, keys_at)
            if args.serve:
                return await serve_until_signal(stop)
            return await load(args, instances)


async def serve_until_signal(stop: asyncio.Event) -> int:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print("Ctrl-C stops everything.", flush=True)
    await stop.wait()
    return 0


async def load(args: argparse.Namespace, instances: Sequence[Instance]) -> int:
    plan = Plan(url=",".join(i.url for i in instances), users=args.users,
                concurrency=args.concurrency, duration=args.duration, hot_set=args.hot_set,
                mix=args.mix, seed=args.seed)  # fmt: skip
    console = Console(stderr=args.no_live)

    async def converged() -> dict[str, Any]:
        return await converge(instances, args.converge_within)

    report = await loadgen.run(plan, console=console, live=not args.no_live,
                               before_check=converged)  # fmt: skip
    display.final(console, report)
    result = report["before_check"]
    verdict = "converged" if result["converged"] else "DID NOT CONVERGE"
    console.print(
        f"multi-master: {verdict} {result['seconds']} s after the load: "
        f"{result['documents']} documents, {result['documents_differing']} differing, "
        f"{result['conflicts_left']} conflicts left; reconcilers {result['reconcilers']}"
    )
    if args.report is not None:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    ok = result["converged"] and report["consistency"]["ok"]
    return 0 if ok and report["server_errors_5xx"] == 0 else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure()
    # Started from the main thread, so the kernel ends them should this process be killed.
    with ExitStack() as stack:
        servers = [stack.enter_context(DevServer(in_memory=True)) for _ in range(args.instances)]
        return asyncio.run(run(args, servers))


if __name__ == "__main__":
    sys.exit(main())
