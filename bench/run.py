"""The peer benchmark (issue 3): client CPU per operation of four CouchDB clients, and the
model layer against the core for our client (issue 4).

Run from the repository root: ``.venv/bin/python -m bench`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime
import gc
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiocouch
import aiohttp

import tor_async_couchdb as tac
from bench import bulk, models
from bench.clients import CLIENTS, DESIGN, VIEW, Client
from tor_async_couchdb.devserver import DevServer

N_DOCS = 1000
BULK_SIZE = 1000
# Iterations of each operation per client per round, at --scale 1.
ITERATIONS = {
    "get": 300,
    "create": 150,
    "update": 150,
    "view_key": 200,
    "view_range": 50,
    "bulk_insert": 5,
}
LABELS = {
    "get": "get (1 doc by id)",
    "create": "create (PUT new id)",
    "update": "update (GET + PUT)",
    "view_key": "view by key (1 row, docs)",
    "view_range": "view range (100 rows, docs)",
    "bulk_insert": "bulk insert (1000 docs)",
}
FLOOR = "raw"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
NOTES = """## How each client is used

- ours: `get_doc`, `put_doc`, `[row async for row in db.view(...)]` (the range with `limit=100,
  page_size=101`, which asks the server for 101 rows: one extra row to know whether a next page
  exists), `bulk_docs`.
- aiocouch: `await db[id]`, `await db.create(id, data=...)` + `await doc.save()` (aiocouch sends
  a HEAD before the PUT: two requests per create, part of its idiomatic cost),
  `doc[...] = ...; await doc.save()`, `await db.view(d, v).get(key=<JSON>, include_docs=True)`
  + `response.docs()`, `async with db.create_docs() as bulk: bulk.create(id, data=...)`.
  pouchdb-server answers `text/plain` unless asked for JSON, which aiohttp's `.json()` refuses,
  so `Accept: application/json` is added to aiocouch's session (CouchDB itself needs no such
  change).
- aiohttp: one `ClientSession` with the Authorization and Accept headers,
  `json_serialize=orjson`, `json=` bodies and `.json(loads=orjson.loads)`.
- raw: `bench/rawhttp.py`, one keep-alive connection, hand-built request bytes, orjson.

Noise: on this 2-CPU VM the server shares the CPUs with the client, and single-document
operations vary by up to 2x between rounds (see min-max) and by 20-50% between runs; a ratio
within about 15% of a threshold (2.0x floor, 1.25x core) needs several runs to be called.
"""


def make_doc(doc_id: str, i: int) -> dict[str, Any]:
    """A document of about 300 bytes as JSON."""
    return {
        "_id": doc_id,
        "type": "bench",
        "k": f"k{i:05d}",
        "n": i,
        "name": f"Document number {i}",
        "active": i % 2 == 0,
        "score": i * 1.5,
        "tags": ["alpha", "beta", "gamma"],
        "address": {"street": f"{i} Main Street", "city": "Springfield", "zip": f"{i:05d}"},
        "text": "lorem ipsum dolor sit amet, consectetur adipiscing elit sed do eiusmod tempor",
    }


@dataclass
class Measure:
    cpu_us: list[float] = field(default_factory=list)  # per op, one value per round
    ops_s: list[float] = field(default_factory=list)


def db_names(client: str) -> tuple[str, str, str]:
    return (f"bench_{client}_docs", f"bench_{client}_view", f"bench_{client}_bulk")


async def prepare(url: str, auth: tuple[str, str]) -> None:
    """Same data in every client's databases; the view index built before any timing."""
    async with tac.CouchDB(url, auth=auth) as couch:
        for client in CLIENTS:
            docs_db, view_db, bulk_db = (couch.database(name) for name in db_names(client.name))
            for db in (docs_db, view_db, bulk_db):
                await db.create(exists_ok=True)
            seed = [make_doc(f"doc{i:05d}", i) for i in range(N_DOCS)]
            for db in (docs_db, view_db):
                results = await db.bulk_docs(seed)
                assert all(result.ok for result in results)
            await view_db.put_doc(
                {
                    "_id": f"_design/{DESIGN}",
                    "views": {VIEW: {"map": "function (doc) { if (doc.k) emit(doc.k, null); }"}},
                }
            )
            rows = [row async for row in view_db.view(DESIGN, VIEW, limit=1)]
            assert rows, "the view is empty"
        model_db = couch.database(models.DB_NAME)
        await model_db.create(exists_ok=True)
        results = await model_db.bulk_docs(models.seed_docs())
        assert all(result.ok for result in results)


class Workload:
    """The operations, each as ``n`` sequential calls; ids differ by client and round."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.created = 0
        self.bulked = 0
        self.cursor = 0

    def _next(self) -> int:
        self.cursor = (self.cursor + 7919) % N_DOCS  # a prime step: every doc, shuffled
        return self.cursor

    async def get(self, n: int) -> None:
        for _ in range(n):
            await self.client.get(f"doc{self._next():05d}")

    async def create(self, n: int) -> None:
        for _ in range(n):
            self.created += 1
            await self.client.create(make_doc(f"new{self.created:07d}", self.created))

    async def update(self, n: int) -> None:
        for i in range(n):
            await self.client.update(f"doc{self._next():05d}", i)

    async def view_key(self, n: int) -> None:
        for _ in range(n):
            rows = await self.client.view_key(f"k{self._next():05d}")
            assert len(rows) == 1

    async def view_range(self, n: int) -> None:
        for _ in range(n):
            start = self._next() % (N_DOCS - 100)
            rows = await self.client.view_range(f"k{start:05d}", f"k{start + 99:05d}")
            assert len(rows) == 100

    async def bulk_insert(self, n: int) -> None:
        for _ in range(n):
            self.bulked += 1
            docs = [make_doc(f"b{self.bulked:04d}-{i:04d}", i) for i in range(BULK_SIZE)]
            saved = await self.client.bulk(docs)
            assert saved == BULK_SIZE

    def operation(self, name: str) -> Callable[[int], Awaitable[None]]:
        method: Callable[[int], Awaitable[None]] = getattr(self, name)
        return method


async def run_rounds(
    url: str, auth: tuple[str, str], rounds: int, scale: float
) -> tuple[dict[str, dict[str, Measure]], dict[str, int]]:
    loop = asyncio.get_running_loop()
    sockets: dict[str, int] = {client.name: 0 for client in CLIENTS}
    current = [""]
    original = loop.create_connection

    async def counting(*args: Any, **kwargs: Any) -> Any:
        sockets[current[0]] += 1
        return await original(*args, **kwargs)

    loop.create_connection = counting  # type: ignore[method-assign]
    clients = [cls(url, auth, db_names(cls.name)) for cls in CLIENTS]
    workloads = {}
    for client in clients:
        current[0] = client.name
        await client.start()
        workload = Workload(client)
        for name in ITERATIONS:  # warm-up: code paths, connections, correctness asserts
            await workload.operation(name)(1 if name == "bulk_insert" else 10)
        workloads[client.name] = workload
    results = {name: {c.name: Measure() for c in clients} for name in ITERATIONS}

    async def timed(call: Callable[[int], Awaitable[None]], n: int, into: Measure) -> None:
        gc.collect()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await call(n)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        into.cpu_us.append(cpu / n * 1e6)
        into.ops_s.append(n / wall)

    for round_no in range(rounds):
        order = clients[round_no % len(clients) :] + clients[: round_no % len(clients)]
        for name, base in ITERATIONS.items():
            n = max(1, round(base * scale))
            for client in order:
                current[0] = client.name
                await timed(workloads[client.name].operation(name), n, results[name][client.name])
        print(f"round {round_no + 1}/{rounds} done", file=sys.stderr, flush=True)
    for client in clients:
        await client.aclose()
    loop.create_connection = original  # type: ignore[method-assign]
    return results, sockets


async def run_model_processes(
    url: str, auth: tuple[str, str], processes: int, rounds: int, scale: float
) -> tuple[dict[str, dict[str, Measure]], list[dict[str, float]], dict[str, list[float]]]:
    """The model layer vs the core (issue 4) in ``processes`` fresh processes, one after the
    other (``python -m bench.models``), each running ``rounds`` rounds of every pair.

    Why several processes: the cost ratio of two code paths moves by up to 0.1 from one
    process to the next here (memory layout, hash seeds), however many rounds one process
    runs; pyperf averages over processes for the same reason. Returns every round of every
    process (by the pair's model op, then by op), each process's median per-round ratio per
    pair, and the offline measures (:func:`bench.models.measure_offline`) of every round.
    """
    into = {model: {op: Measure() for op in (core, model)} for core, model in models.PAIRS}
    offline: dict[str, list[float]] = {op: [] for pair in models.OFFLINE_PAIRS for op in pair}
    per_process = []
    env = {**os.environ, models.PASSWORD_ENV: auth[1]}
    for number in range(processes):
        measured = await _model_process(url, auth[0], env, rounds, scale)
        for core, model in models.PAIRS:
            for op in (core, model):
                into[model][op].cpu_us.extend(measured[model][op]["cpu_us"])
                into[model][op].ops_s.extend(measured[model][op]["ops_s"])
        for op, values in measured["offline"].items():
            offline[op].extend(values)
        per_process.append(
            {
                model: statistics.median(
                    m / c
                    for m, c in zip(
                        measured[model][model]["cpu_us"],
                        measured[model][core]["cpu_us"],
                        strict=True,
                    )
                )
                for core, model in models.PAIRS
            }
        )
        print(f"model process {number + 1}/{processes} done", file=sys.stderr, flush=True)
    return into, per_process, offline


MODEL_PROCESS_TIMEOUT = 600.0  # seconds; one process takes about 40 at the default scale


async def _model_process(
    url: str, user: str, env: dict[str, str], rounds: int, scale: float
) -> Any:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.models",
        url,
        user,
        f"--rounds={rounds}",
        f"--scale={scale}",
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, _ = await asyncio.wait_for(child.communicate(), MODEL_PROCESS_TIMEOUT)
    except TimeoutError:
        child.kill()
        await child.wait()
        raise RuntimeError(f"bench.models ran over {MODEL_PROCESS_TIMEOUT:.0f} s") from None
    if child.returncode != 0:
        raise RuntimeError(f"bench.models failed with exit status {child.returncode} (above)")
    return json.loads(out)


async def profile_ours(url: str, auth: tuple[str, str], gets: int, creates: int, bulks: int) -> str:
    """cProfile (CPU-time timer) of our client alone: gets, creates, bulk inserts, then the
    model layer's get and save (update)."""
    out = []
    async with tac.CouchDB(url, auth=auth) as couch:
        docs = couch.database(db_names("ours")[0])
        bulk = couch.database(db_names("ours")[2])
        await docs.get_doc("doc00000")
        for label, count in (
            ("get", gets),
            ("create (PUT new id)", creates),
            ("bulk insert (1000 docs)", bulks),
        ):
            profiler = cProfile.Profile(time.process_time)
            if label == "get":
                profiler.enable()
                for i in range(count):
                    await docs.get_doc(f"doc{i % N_DOCS:05d}")
                profiler.disable()
            elif label.startswith("create"):
                new = [make_doc(f"prof{i:06d}", i) for i in range(count)]
                profiler.enable()
                for doc in new:
                    await docs.put_doc(doc)
                profiler.disable()
            else:
                payloads = [
                    [make_doc(f"p{j:03d}-{i:04d}", i) for i in range(BULK_SIZE)]
                    for j in range(count)
                ]
                profiler.enable()
                for payload in payloads:
                    await bulk.bulk_docs(payload)
                profiler.disable()
            out.append(_profile_table(profiler, label, count))
        model_work = models.ModelWorkload(couch.database(models.DB_NAME))
        await model_work.start()
        for label, op in (("model get", "model_get"), ("model save (update)", "model_update")):
            profiler = cProfile.Profile(time.process_time)
            call = model_work.operation(op)
            profiler.enable()
            await call(gets if op == "model_get" else creates)
            profiler.disable()
            out.append(_profile_table(profiler, label, gets if op == "model_get" else creates))
    return "\n".join(out)


def _profile_table(profiler: cProfile.Profile, label: str, count: int) -> str:
    stats = pstats.Stats(profiler)
    entries: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(tottime for _, _, tottime, _, _ in entries.values())
    lines = [
        f"### {label}: {count} ops, profiled total {total / count * 1e6:.0f} µs/op "
        "CPU (cProfile inflates; compare shares, not absolutes)",
        "",
        "| function (our code) | calls/op | own µs/op | cumulative µs/op | own % |",
        "|---|---:|---:|---:|---:|",
    ]
    ours = [
        (key, value)
        for key, value in entries.items()
        if "tor_async_couchdb" in key[0] and "devserver" not in key[0]
    ]
    ours.sort(key=lambda item: item[1][2], reverse=True)
    for (filename, line, func), (_, ncalls, tottime, cumtime, _) in ours[:12]:
        where = filename.split("tor_async_couchdb/")[-1]
        lines.append(
            f"| `{where}:{line} {func}` | {ncalls / count:.1f} | {tottime / count * 1e6:.1f} | "
            f"{cumtime / count * 1e6:.1f} | {tottime / total * 100:.1f} |"
        )
    own = sum(value[2] for _, value in ours)
    lines += ["", f"Our code's own time: {own / total * 100:.1f}% of the profiled total.", ""]
    others = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:8]
    lines += ["Top functions overall (own time):", ""]
    for (filename, line, func), (_, ncalls, tottime, _, _) in others:
        where = filename.split("site-packages/")[-1].split("tor_async_couchdb/")[-1]
        lines.append(
            f"- `{where}:{line} {func}`: {ncalls / count:.1f} calls/op, "
            f"{tottime / count * 1e6:.1f} µs/op ({tottime / total * 100:.1f}%)"
        )
    lines.append("")
    return "\n".join(lines)


def render_models(
    model_results: dict[str, dict[str, Measure]], per_process: list[dict[str, float]]
) -> tuple[list[str], list[str]]:
    """The "model layer vs core" table and its verdicts (target: model <= 1.25x core, by the
    ratio of medians and by the median of per-round ratios alike)."""
    lines = [
        "| operation | call | CPU µs/op (median) | min-max over rounds | ops/s | model/core "
        "(ratio of medians) | model/core (median of per-round ratios) | per process |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    verdicts = []
    for core, model in models.PAIRS:
        core_m, model_m = model_results[model][core], model_results[model][model]
        ratio = statistics.median(model_m.cpu_us) / statistics.median(core_m.cpu_us)
        per_round = [m / c for m, c in zip(model_m.cpu_us, core_m.cpu_us, strict=True)]
        paired = statistics.median(per_round)
        processes = " ".join(f"{p[model]:.2f}" for p in per_process)
        for op, m, cells in (
            (core, core_m, "1.00 | 1.00 | "),
            (model, model_m, f"**{ratio:.2f}** | **{paired:.2f}** | {processes}"),
        ):
            lines.append(
                f"| {models.PAIR_LABELS[model]} | {models.LABELS[op]} | "
                f"{statistics.median(m.cpu_us):.0f} | {min(m.cpu_us):.0f}-{max(m.cpu_us):.0f} | "
                f"{statistics.median(m.ops_s):.0f} | {cells} |"
            )
        if model not in models.TARGETED:
            continue
        met = max(ratio, paired) <= models.TARGET
        verdicts.append(
            f"- {models.PAIR_LABELS[model]}: model <= {models.TARGET}x core: "
            f"{'yes' if met else 'NO'} ({ratio:.2f}x by medians, {paired:.2f}x by rounds; "
            f"per-round ratios {min(per_round):.2f}-{max(per_round):.2f})"
        )
    return lines, verdicts


def render_offline(
    model_results: dict[str, dict[str, Measure]], offline: dict[str, list[float]]
) -> list[str]:
    """The model layer's own work without network, next to what it adds against the server."""
    lines = [
        "| pair | core µs/op, no network | model µs/op, no network | model - core, no network "
        "| model - core, against the server | server / no network |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for core, model in models.OFFLINE_PAIRS:
        core_off, model_off = statistics.median(offline[core]), statistics.median(offline[model])
        pair = model_results[model]
        served = statistics.median(pair[model].cpu_us) - statistics.median(pair[core].cpu_us)
        added = model_off - core_off
        lines.append(
            f"| {models.PAIR_LABELS[model]} | {core_off:.1f} | {model_off:.1f} | {added:.1f} | "
            f"{served:.1f} | {served / added:.1f}x |"
        )
    return lines


OFFLINE_NOTES = """The same get and update pairs, in the same processes, against a mock
transport that answers at once (`bench.models.measure_offline`: no socket, no server, no wait;
medians of every round of every process): the work the model layer adds, in a tight loop, and
what that same work adds to an operation against the server, where each call follows a wait for
the network."""


MODEL_NOTES = """The model is `bench/models.py`'s `Item`: six typed fields (a str, an enum, a
`Decimal`, a tz-aware `datetime`, a `list[str]`, an int), stored as a document of about 290
bytes with `_rev`. The core side reads and writes the same documents (`Item.to_doc()`, other
ids), so each pair compares like with like: `get_doc(id)` vs `db.get(Item, id)`;
`put_doc(doc)` of a doc holding its `_rev` (then `doc["_rev"] = answer["rev"]`) vs
`items[i] = await db.save(items[i])`; `put_doc({"_id": new_id(), **doc})` vs `db.save(item)`
of an item without an id. The pairs run after the peer rounds, in several fresh processes one
after the other (`python -m bench.models`; "per process" gives each one's median per-round
ratio), each running every pair once per round with its two sides alternating in blocks of 20
operations (which side starts alternates too), so that both run under the same conditions on
this shared machine. The last pair, for comparison, saves the same items with `Item`'s plain-Python
save lane removed: the pydantic path, which models outside the lane's field types take."""


def render(
    results: dict[str, dict[str, Measure]],
    model_results: dict[str, dict[str, Measure]],
    per_process: list[dict[str, float]],
    offline: dict[str, list[float]],
    sockets: dict[str, int],
    *,
    rounds: int,
    scale: float,
    command: str,
    code: str,
    load: str,
) -> tuple[str, list[str]]:
    names = [cls.name for cls in CLIENTS]
    lines = [
        "| operation | client | CPU µs/op (median) | min-max over rounds | x floor | ops/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    verdicts = []
    for op, by_client in results.items():
        medians = {c: statistics.median(by_client[c].cpu_us) for c in names}
        floor = medians[FLOOR]
        for c in names:
            m = by_client[c]
            lines.append(
                f"| {LABELS[op]} | {c} | {medians[c]:.0f} | "
                f"{min(m.cpu_us):.0f}-{max(m.cpu_us):.0f} | {medians[c] / floor:.2f} | "
                f"{statistics.median(m.ops_s):.0f} |"
            )
        ok_peers = medians["ours"] < min(medians["aiocouch"], medians["aiohttp"])
        ok_floor = medians["ours"] <= 2.0 * floor
        verdicts.append(
            f"- {LABELS[op]}: below aiocouch and aiohttp: {'yes' if ok_peers else 'NO'}; "
            f"<= 2.0x floor: {'yes' if ok_floor else 'NO'} ({medians['ours'] / floor:.2f}x)"
        )
    socket_line = ", ".join(f"{c} {sockets[c]}" for c in names)
    header = [
        "# Peer benchmark (issue 3)",
        "",
        f"Command (from the repository root): `{command}`",
        "",
        f"- Date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}",
        f"- Machine: {platform.machine()}, nproc {os.cpu_count()}, {platform.platform()}",
        f"- Python {platform.python_version()}, aiohttp {aiohttp.__version__}, "
        f"aiocouch {getattr(aiocouch, '__version__', '4.0.1')}, "
        f"tor_async_couchdb {getattr(tac, '__version__', '?')}, code: {code} at the start",
        "- Server: embedded pouchdb-server (DevServer, in memory), a separate process whose CPU "
        "is not counted.",
        f"- {rounds} interleaved rounds (each operation: every client in turn, the order rotated "
        f"each round), scale {scale}: iterations per client per round "
        + ", ".join(f"{op} {max(1, round(n * scale))}" for op, n in ITERATIONS.items())
        + f"; model/core pairs (ours only): {len(per_process)} processes x {rounds} rounds of "
        + f"{max(1, round(models.PAIR_CALLS * scale))} operations of each side of "
        + ", ".join(f"`{core}`/`{model}`" for core, model in models.PAIRS)
        + "; operations sequential; CPU = `time.process_time()` of the measuring process per "
        "op, "
        "median of rounds; ops/s = wall clock, median of rounds.",
        f"- Floor = `{FLOOR}` (minimal asyncio HTTP/1.1 keep-alive client, orjson).",
        f"- Sockets opened per client over the whole run (warm-up included): {socket_line}.",
        f"- Load average (1, 5, 15 min) on {os.cpu_count()} CPUs: {load}.",
        "",
    ]
    model_lines, model_verdicts = render_models(model_results, per_process)
    body = [
        *header,
        *lines,
        "",
        "## Targets (ours)",
        "",
        *verdicts,
        "",
        "## Model layer vs core (issue 4, ours only)",
        "",
        *model_lines,
        "",
        *model_verdicts,
        "",
        MODEL_NOTES,
        "",
        "### The model layer's own work, without network",
        "",
        *render_offline(model_results, offline),
        "",
        OFFLINE_NOTES,
        "",
        NOTES,
    ]
    verdicts += model_verdicts
    return "\n".join(body), verdicts


def _code_version() -> str:
    """The commit measured, and whether src/ had uncommitted changes when the run started."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            check=False,
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"],
            check=False,
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown (no git)"
    return f"git {head or '?'}" + (" + uncommitted changes in src/" if dirty else " (src/ clean)")


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


async def main_async(args: argparse.Namespace, command: str) -> str:
    load = _load()
    code = _code_version()
    with DevServer(in_memory=True) as server:
        url, auth = server.url, server.auth
        started = time.perf_counter()
        await prepare(url, auth)
        print(f"prepared in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        results, sockets = await run_rounds(url, auth, args.rounds, args.scale)
        model_results, per_process, offline = await run_model_processes(
            url, auth, args.model_processes, args.rounds, args.scale
        )
        report, _ = render(
            results,
            model_results,
            per_process,
            offline,
            sockets,
            rounds=args.rounds,
            scale=args.scale,
            command=command,
            code=code,
            load=f"before the run {load}; after the rounds {_load()} (the benchmark itself "
            "keeps about 2 busy: this process and the server)",
        )
        if args.profile:
            profile = await profile_ours(url, auth, gets=1000, creates=300, bulks=10)
            report += "\n## Where our client's CPU goes (cProfile)\n\n" + profile
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--scale", type=float, default=2.0, help="multiplies the iterations")
    parser.add_argument(
        "--model-processes", type=int, default=5, help="processes for the model/core pairs"
    )
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the Markdown report")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.model_processes < 1:
        parser.error("--rounds and --model-processes must be at least 1")
    command = ".venv/bin/python -m bench" + "".join(
        f" {arg}" for arg in (argv if argv is not None else sys.argv[1:])
    )
    started = time.perf_counter()
    report = asyncio.run(main_async(args, command))
    report += f"\nTotal run time: {time.perf_counter() - started:.0f} s.\n"
    print(report)
    args.out.write_text(report + bulk.kept_section(args.out))  # (python -m bench.bulk's)


if __name__ == "__main__":
    main()
