"""Run a load against the fruit store: ``python -m samples.loadgen --url URL [options]``.

Prints a live display, then a table (requests/s; p50/p95/p99 per operation; errors by status;
conflicts retried), writes the report as JSON (``--report``) and checks that every write the
service acknowledged is reflected. Exits 1 if the check fails or any 5xx was answered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from . import display
from .check import check
from .plan import DEFAULT_MIX, Plan, parse_mix
from .stats import Recorder
from .users import COLORS, Client, Ledger, VirtualUser


def parse_args(argv: list[str] | None) -> tuple[Plan, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m samples.loadgen", description=__doc__)
    parser.add_argument(
        "--url",
        default="http://127.0.0.1:8888",
        help="the fruit store (several instances: comma-separated URLs)",
    )
    parser.add_argument("--users", type=int, default=50, help="virtual users")
    parser.add_argument("--concurrency", type=int, default=50, help="requests in flight, at most")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds")
    parser.add_argument("--requests", type=int, default=None, help="stop after this many")
    parser.add_argument("--hot-set", type=int, default=5, help="fruits every eat goes to")
    mix = ",".join(f"{k}={v}" for k, v in DEFAULT_MIX.items())
    parser.add_argument("--mix", type=parse_mix, default=dict(DEFAULT_MIX),
                        help=f"operation weights (default {mix})")  # fmt: skip
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--report", type=Path, default=None, help="write the report here (JSON)")
    parser.add_argument("--no-live", action="store_true", help="no live display")
    args = parser.parse_args(argv)
    plan = Plan(url=args.url, users=args.users, concurrency=args.concurrency,
                duration=args.duration, requests=args.requests, hot_set=args.hot_set,
                mix=args.mix, seed=args.seed)  # fmt: skip
    return plan, args


async def prepare(clients: list[Client], plan: Plan, ledger: Ledger) -> None:
    """Create the hot set on the first instance (not measured); with several, wait (at most a
    minute) until every instance serves it, so that no eat meets a fruit not replicated yet."""
    first = clients[0]
    for n in range(plan.hot_set):
        answer = await first.send("POST", "/v1.0/fruits", {"color": COLORS[n % len(COLORS)]})
        if answer.status != 201:
            raise SystemExit(f"cannot create the hot set: {first.base} answered {answer.status}")
        ledger.hot.append(answer.body["fruit_id"])
    deadline = time.monotonic() + 60
    for client in clients[1:]:
        for fruit_id in ledger.hot:
            while (await client.send("GET", f"/v1.0/fruits/{fruit_id}")).status != 200:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the hot set did not replicate to {client.base}")
                await asyncio.sleep(0.2)


async def conflicts_retried(client: Client) -> int:
    """The service's count of conflicts it retried (from its metrics)."""
    answer = await client.send("GET", "/_metrics?format=json")
    if answer.status != 200:
        return 0
    return int(answer.body["counters"].get("conflicts_retried", 0))


async def run(
    plan: Plan,
    *,
    console: Console,
    live: bool,
    before_check: Callable[[], Awaitable[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Run the plan; returns the report (with the consistency check, of every instance).

    ``before_check`` runs between the load and the check (the multi-master demo waits there
    for the instances to converge); what it returns is reported as ``before_check``.
    """
    ledger = Ledger()
    clients = [Client(plan, url) for url in plan.urls]
    try:
        await prepare(clients, plan, ledger)
        retried_before = await _conflicts_retried(clients)
        recorder = Recorder()  # the clock starts with the load, after the hot set is made
        await _load(plan, clients, ledger, recorder, console=console, live=live)
        recorder.finished = time.monotonic()
        recorder.conflicts_retried = await _conflicts_retried(clients) - retried_before
        extra = {"before_check": await before_check()} if before_check is not None else {}
        consistency = await _check_all(clients, ledger)
    finally:
        for client in clients:
            await client.close()
    return recorder.report(plan=_plan_json(plan), consistency=consistency, **extra)


async def _conflicts_retried(clients: list[Client]) -> int:
    return sum([await conflicts_retried(client) for client in clients])


async def _check_all(clients: list[Client], ledger: Ledger) -> dict[str, Any]:
    """The check through the first instance; with several, through each (all must pass)."""
    results = [await check(client, ledger) for client in clients]
    if len(results) == 1:
        return results[0]
    return {**results[0], "ok": all(r["ok"] for r in results), "instances": results}


async def _load(plan: Plan, clients: list[Client], ledger: Ledger, recorder: Recorder, *,
                console: Console, live: bool) -> None:  # fmt: skip
    stop = asyncio.Event()
    budget = itertools.count() if plan.requests is not None else None
    users = [
        VirtualUser(n, plan, clients[n % len(clients)], ledger, recorder,
                    instance=n % len(clients))
        for n in range(plan.users)
    ]  # fmt: skip
    tasks = [asyncio.create_task(user.run(stop, budget)) for user in users]
    shown = Live(display.progress(recorder, plan.duration), console=console, transient=True,
                 auto_refresh=False) if live else None  # fmt: skip
    with shown or contextlib.nullcontext():
        while not stop.is_set() and recorder.elapsed < plan.duration:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
            if shown is not None:
                shown.update(display.progress(recorder, plan.duration), refresh=True)
        stop.set()
        await asyncio.gather(*tasks)


def _plan_json(plan: Plan) -> dict[str, Any]:
    return {"users": plan.users, "concurrency": plan.concurrency, "duration_s": plan.duration,
            "requests": plan.requests, "hot_set": plan.hot_set, "mix": plan.mix}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    plan, args = parse_args(argv)
    console = Console(stderr=args.no_live)
    report = asyncio.run(run(plan, console=console, live=not args.no_live))
    display.final(console, report)
    if args.report is not None:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["consistency"]["ok"] and report["server_errors_5xx"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
