"""The model layer's cost in bulk writes and queries (issue 10), against the core and peers.

Run from the repository root: ``.venv/bin/python -m bench.bulk`` (``--help`` for options). It
starts an embedded server (or uses the first server of ``COUCHDB_URL``, credentials in the
URL), seeds it, then runs several fresh processes one after the other
(``python -m bench.bulk --child URL USER``, the password in ``BENCH_COUCH_PASSWORD``), each
printing its measures as JSON, and writes its section of ``bench/RESULTS.md``.

Each process runs rounds; in each round every group of operations is measured with its sides
alternating in blocks (the side that starts alternating from round to round), so that every
ratio compares operations run under the same conditions, in the same process. CPU is the client
process's ``time.process_time()``; the server's is not counted.

The pairs:

- ``save_many`` of 1,000 models built beforehand (10 fields, no id: ids assigned) vs the core's
  ``bulk_docs`` of the same documents (``{"_id": new_id(), **doc}`` for each, as the core's
  user writes new documents), and aiohttp and the raw floor client posting those documents;
- ``query`` of 100 models by an indexed value and ``query_range`` of 100 models vs the core's
  ``view(..., include_docs=True)`` of the same rows (the models built, since users pay it), and
  ``query`` of 1 model vs the view read of its one row;
- model ``get`` and ``save`` (an update) vs the core's ``get_doc`` and ``put_doc`` of documents
  of the same shape, and aiocouch's raw-document get and put.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import aiocouch
import aiohttp

import tor_async_couchdb as tac
from bench.clients import AioCouch, AioHTTP, Raw
from tor_async_couchdb.devserver import DevServer

PASSWORD_ENV = "BENCH_COUCH_PASSWORD"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
START_MARK = "<!-- bench.bulk: start -->"
END_MARK = "<!-- bench.bulk: end -->"
QUERY_DB = "bench_bulk_query"
DOCS_DB = "bench_bulk_docs"
N_QUERY = 1000  # models in the query database: 10 groups of 100
GROUP = 100
BULK = 1000  # documents per bulk write
N_SINGLE = 200  # documents of each side of the single-document pairs
CHILD_TIMEOUT = 900.0


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class Record(tac.Model, type_name="bench_record", version="1.0"):
    """Ten typed fields: two indexed (a str and an int), a str, an enum, a Decimal, an aware
    datetime, a list of str, a float, a bool and an optional str (None in half)."""

    group: Annotated[str, tac.Indexed()]
    seq: Annotated[int, tac.Indexed()]
    name: str
    color: Color
    price: Decimal
    updated_on: datetime
    tags: list[str]
    score: float
    active: bool
    note: str | None = None


def make_record(i: int, *, doc_id: str | None = None) -> Record:
    return Record(
        id=doc_id,
        group=f"g{i // GROUP:03d}",
        seq=i,
        name=f"Record number {i}: lorem ipsum dolor sit amet, consectetur adipiscing elit",
        color=list(Color)[i % 3],
        price=Decimal(f"{i}.25"),
        updated_on=datetime(2026, 11, 27, 12, 0, tzinfo=UTC) + timedelta(seconds=i),
        tags=["alpha", "beta", "gamma", f"tag{i % 10}"],
        score=i * 1.5,
        active=i % 2 == 0,
        note=None if i % 2 else f"note {i}",
    )


@dataclass(frozen=True)
class Pair:
    """``top`` measured against ``base``: ``top``/``base`` at most ``target`` (None: shown
    for information), or strictly below it with ``below``."""

    label: str
    top: str
    base: str
    target: float | None
    below: bool = False


# Groups of operations measured together: (name, operations, calls of each per round, block).
GROUPS: tuple[tuple[str, tuple[str, ...], int, int], ...] = (
    ("bulk", ("model_save_many", "core_bulk", "aiohttp_bulk", "raw_bulk"), 3, 1),
    ("query", ("model_query_100", "core_view_100"), 20, 5),
    ("range", ("model_range_100", "core_range_100"), 20, 5),
    ("query1", ("model_query_1", "core_view_1"), 100, 20),
    ("get", ("model_get", "core_get", "aiocouch_get"), 200, 20),
    ("put", ("model_save", "core_put", "aiocouch_put"), 200, 20),
)
LABELS = {
    "model_save_many": "model `db.save_many(models, chunk_size=1000)` (1,000 new)",
    "core_bulk": "core `bulk_docs(docs)` (1,000 new)",
    "aiohttp_bulk": "aiohttp `POST _bulk_docs` (1,000 new)",
    "raw_bulk": "raw floor `POST _bulk_docs` (1,000 new)",
    "model_query_100": "model `query(Record, group=g)` (100 models)",
    "core_view_100": "core `view(..., key=g, include_docs=True)` (100 rows)",
    "model_range_100": "model `query_range(Record, 'seq', start=a, end=a+99)` (100 models)",
    "core_range_100": "core `view(..., startkey=a, endkey=a+99, include_docs=True)` (100 rows)",
    "model_query_1": "model `query(Record, seq=i)` (1 model)",
    "core_view_1": "core `view(..., key=i, include_docs=True)` (1 row)",
    "model_get": "model `db.get(Record, id)`",
    "core_get": "core `get_doc(id)`",
    "aiocouch_get": "aiocouch `await db[id]`",
    "model_save": "model `db.save(record)` (update, with rev)",
    "core_put": "core `put_doc(doc)` (update, with `_rev`)",
    "aiocouch_put": "aiocouch `await doc.save()` (update)",
}
PAIRS = (
    Pair("save_many vs bulk_docs (1,000 models)", "model_save_many", "core_bulk", 1.5),
    Pair("query vs view read (100 models)", "model_query_100", "core_view_100", 1.5),
    Pair("query_range vs view read (100 models)", "model_range_100", "core_range_100", 1.5),
    Pair("core bulk_docs vs aiohttp direct (1,000 docs)", "core_bulk", "aiohttp_bulk", 1.0),
    Pair("model get vs core get_doc", "model_get", "core_get", 1.4),
    Pair("model save vs core put_doc", "model_save", "core_put", 1.4),
    Pair("model get vs aiocouch get", "model_get", "aiocouch_get", 1.0, below=True),
    Pair("model save vs aiocouch put", "model_save", "aiocouch_put", 1.0, below=True),
    Pair("for information: query vs view read (1 model)", "model_query_1", "core_view_1", None),
    Pair("for information: core bulk_docs vs raw floor", "core_bulk", "raw_bulk", None),
    Pair("for information: aiohttp vs raw floor", "aiohttp_bulk", "raw_bulk", None),
    Pair("for information: save_many vs raw floor", "model_save_many", "raw_bulk", None),
)


# --- the workload (one child process) ----------------------------------------------------------


class Workload:
    """Every operation, each as ``n`` sequential calls."""

    def __init__(self, url: str, auth: tuple[str, str], tag: str) -> None:
        self.url, self.auth = url, auth
        self.couch = tac.CouchDB(url, auth=auth)
        self.queries = self.couch.database(QUERY_DB)
        self.docs = self.couch.database(DOCS_DB)
        # Each bulk side writes into a database of its own, made by this process.
        self.bulk_names = {side: f"bench_bulk_{tag}_{side}" for side in ("model", "core", "peer")}
        self.bulk = {side: self.couch.database(n) for side, n in self.bulk_names.items()}
        peer_dbs = (DOCS_DB, QUERY_DB, self.bulk_names["peer"])
        self.aiohttp = AioHTTP(url, auth, peer_dbs)
        self.raw = Raw(url, auth, peer_dbs)
        self.aiocouch = AioCouch(url, auth, (DOCS_DB, DOCS_DB, DOCS_DB))
        self.cursor = 0
        self.records: list[Record] = []
        self.core_docs: list[dict[str, Any]] = []
        self.aiocouch_docs: list[Any] = []
        self.batches: list[list[Record]] = []
        self.plain_docs = [make_record(i).to_doc() for i in range(BULK)]
        self.group_design, self.group_view = self._view("group")
        self.seq_design, self.seq_view = self._view("seq")

    @staticmethod
    def _view(index: str) -> tuple[str, str]:
        design, view = tac.view_location(Record, index)
        return design.removeprefix("_design/"), view

    async def start(self) -> None:
        for db in self.bulk.values():
            await db.create(exists_ok=True)
        for client in (self.aiohttp, self.raw, self.aiocouch):
            await client.start()
        self.records = [await self.docs.get(Record, f"r{i:05d}") for i in range(N_SINGLE)]
        self.core_docs = [await self.docs.get_doc(f"c{i:05d}") for i in range(N_SINGLE)]
        self.aiocouch_docs = [await self.aiocouch.docs[f"a{i:05d}"] for i in range(N_SINGLE)]

    async def aclose(self) -> None:
        for db in self.bulk.values():
            await db.delete_database(missing_ok=True)
        for client in (self.aiohttp, self.raw, self.aiocouch):
            await client.aclose()
        await self.couch.aclose()

    def prepare(self, group: str, calls: int) -> None:
        """Untimed set-up of a group's round: the models save_many is given."""
        if group == "bulk":
            self.batches = [[make_record(i) for i in range(BULK)] for _ in range(calls)]

    def _next(self, size: int) -> int:
        self.cursor = (self.cursor + 7919) % size  # a prime step: every one, shuffled
        return self.cursor

    # bulk writes
    async def model_save_many(self, n: int) -> None:
        for _ in range(n):
            results = await self.bulk["model"].save_many(self.batches.pop(), chunk_size=BULK)
            assert all(result.ok for result in results)

    def _new_docs(self) -> list[dict[str, Any]]:
        new_id = tac.new_id
        return [{"_id": new_id(), **doc} for doc in self.plain_docs]

    async def core_bulk(self, n: int) -> None:
        for _ in range(n):
            results = await self.bulk["core"].bulk_docs(self._new_docs())
            assert all(result.ok for result in results)

    async def aiohttp_bulk(self, n: int) -> None:
        for _ in range(n):
            assert await self.aiohttp.bulk(self._new_docs()) == BULK

    async def raw_bulk(self, n: int) -> None:
        for _ in range(n):
            assert await self.raw.bulk(self._new_docs()) == BULK

    # queries
    async def model_query_100(self, n: int) -> None:
        for _ in range(n):
            group = f"g{self._next(N_QUERY // GROUP):03d}"
            found = [m async for m in self.queries.query(Record, group=group)]
            assert len(found) == GROUP

    async def core_view_100(self, n: int) -> None:
        for _ in range(n):
            group = f"g{self._next(N_QUERY // GROUP):03d}"
            rows = self.queries.view(
                self.group_design, self.group_view, key=group, include_docs=True
            )
            assert len([row["doc"] async for row in rows]) == GROUP

    async def model_range_100(self, n: int) -> None:
        for _ in range(n):
            start = self._next(N_QUERY - GROUP)
            found = [
                m
                async for m in self.queries.query_range(
                    Record, "seq", start=start, end=start + GROUP - 1
                )
            ]
            assert len(found) == GROUP

    async def core_range_100(self, n: int) -> None:
        for _ in range(n):
            start = self._next(N_QUERY - GROUP)
            rows = self.queries.view(
                self.seq_design,
                self.seq_view,
                startkey=start,
                endkey=start + GROUP - 1,
                include_docs=True,
            )
            assert len([row["doc"] async for row in rows]) == GROUP

    async def model_query_1(self, n: int) -> None:
        for _ in range(n):
            found = [m async for m in self.queries.query(Record, seq=self._next(N_QUERY))]
            assert len(found) == 1

    async def core_view_1(self, n: int) -> None:
        for _ in range(n):
            rows = self.queries.view(
                self.seq_design, self.seq_view, key=self._next(N_QUERY), include_docs=True
            )
            assert len([row["doc"] async for row in rows]) == 1

    # single documents
    async def model_get(self, n: int) -> None:
        for _ in range(n):
            await self.docs.get(Record, f"r{self._next(N_SINGLE):05d}")

    async def core_get(self, n: int) -> None:
        for _ in range(n):
            await self.docs.get_doc(f"c{self._next(N_SINGLE):05d}")

    async def aiocouch_get(self, n: int) -> None:
        for _ in range(n):
            await self.aiocouch.get(f"a{self._next(N_SINGLE):05d}")

    async def model_save(self, n: int) -> None:
        records = self.records
        for _ in range(n):
            i = self._next(N_SINGLE)
            records[i] = await self.docs.save(records[i])

    async def core_put(self, n: int) -> None:
        docs = self.core_docs
        for _ in range(n):
            doc = docs[self._next(N_SINGLE)]
            doc["_rev"] = (await self.docs.put_doc(doc))["rev"]

    async def aiocouch_put(self, n: int) -> None:
        docs = self.aiocouch_docs
        for _ in range(n):
            doc = docs[self._next(N_SINGLE)]
            doc["active"] = not doc["active"]  # aiocouch sends nothing for an unchanged doc
            await doc.save()

    def operation(self, name: str) -> Callable[[int], Awaitable[None]]:
        method: Callable[[int], Awaitable[None]] = getattr(self, name)
        return method


def _calls(group: str, calls: int, scale: float) -> int:
    # The bulk writes are not scaled: 3 of 1,000 documents per side and round already take
    # most of a round's time.
    return calls if group == "bulk" else max(1, round(calls * scale))


async def timed_group(
    work: Workload, ops: tuple[str, ...], calls: int, block: int, *, first: int
) -> dict[str, float]:
    """``calls`` operations of each op of a group, in alternating blocks of ``block`` (the
    order rotated each block): client CPU µs per operation."""
    cpu = dict.fromkeys(ops, 0.0)
    gc.collect()
    done = 0
    turn = first
    while done < calls:
        size = min(block, calls - done)
        order = ops[turn % len(ops) :] + ops[: turn % len(ops)]
        for op in order:
            cpu0 = time.process_time()
            await work.operation(op)(size)
            cpu[op] += time.process_time() - cpu0
        done += size
        turn += 1
    return {op: cpu[op] / calls * 1e6 for op in ops}


async def measure(url: str, auth: tuple[str, str], rounds: int, scale: float) -> Any:
    """``{op: [cpu µs/op, one per round]}`` for every operation of every group."""
    found: dict[str, list[float]] = {op: [] for _, ops, _, _ in GROUPS for op in ops}
    work = Workload(url, auth, tag=str(os.getpid()))
    try:
        await work.start()
        for group, ops, _, _ in GROUPS:  # warm-up: code paths, connections, asserts
            work.prepare(group, 1)
            for op in ops:
                await work.operation(op)(1)
        for round_no in range(rounds):
            for group, ops, calls, block in GROUPS:
                n = _calls(group, calls, scale)
                work.prepare(group, n)
                timed = await timed_group(work, ops, n, block, first=round_no)
                for op, cpu_us in timed.items():
                    found[op].append(cpu_us)
    finally:
        await work.aclose()
    return found


# --- the parent: seed, run the processes, report ----------------------------------------------


async def seed(url: str, auth: tuple[str, str]) -> None:
    async with tac.CouchDB(url, auth=auth) as couch:
        queries, docs = couch.database(QUERY_DB), couch.database(DOCS_DB)
        for db in (queries, docs):
            await db.delete_database(missing_ok=True)
            await db.create()
        results = await queries.save_many([make_record(i) for i in range(N_QUERY)])
        assert all(result.ok for result in results)
        await queries.install_views(Record, build=True)
        seeded = []
        for i in range(N_SINGLE):
            doc = make_record(i, doc_id=f"r{i:05d}").to_doc()
            seeded += [doc, {**doc, "_id": f"c{i:05d}"}, {**doc, "_id": f"a{i:05d}"}]
        assert all(result.ok for result in await docs.bulk_docs(seeded))


async def drop(url: str, auth: tuple[str, str]) -> None:
    async with tac.CouchDB(url, auth=auth) as couch:
        for name in (QUERY_DB, DOCS_DB):
            await couch.database(name).delete_database(missing_ok=True)


async def run_child(url: str, user: str, password: str, rounds: int, scale: float) -> Any:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.bulk",
        "--child",
        url,
        user,
        f"--rounds={rounds}",
        f"--scale={scale}",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, PASSWORD_ENV: password},
    )
    try:
        out, _ = await asyncio.wait_for(child.communicate(), CHILD_TIMEOUT)
    except TimeoutError:
        child.kill()
        await child.wait()
        raise RuntimeError(f"bench.bulk --child ran over {CHILD_TIMEOUT:.0f} s") from None
    if child.returncode != 0:
        raise RuntimeError(f"bench.bulk --child failed with exit status {child.returncode}")
    return json.loads(out)


def ratios(found: list[dict[str, list[float]]], pair: Pair) -> tuple[float, float, list[float]]:
    """(ratio of the medians over every round, median of per-round ratios, each process's
    median per-round ratio)."""
    tops = [v for process in found for v in process[pair.top]]
    bases = [v for process in found for v in process[pair.base]]
    per_round = [t / b for t, b in zip(tops, bases, strict=True)]
    per_process = [
        statistics.median(t / b for t, b in zip(p[pair.top], p[pair.base], strict=True))
        for p in found
    ]
    return (
        statistics.median(tops) / statistics.median(bases),
        statistics.median(per_round),
        per_process,
    )


def verdict(pair: Pair, by_medians: float, by_rounds: float) -> str:
    if pair.target is None:
        return "(information)"
    worst = max(by_medians, by_rounds)
    met = worst < pair.target if pair.below else worst <= pair.target
    sign = "<" if pair.below else "<="
    return f"{'yes' if met else '**NO**'} (target {sign} {pair.target:.2f}x)"


def render(
    found: list[dict[str, list[float]]], *, command: str, server: str, rounds: int, scale: float
) -> str:
    lines = [
        START_MARK,
        "## Bulk writes and queries through the model layer (issue 10, `bench/bulk.py`)",
        "",
        f"Command (from the repository root): `{command}`",
        "",
        f"- Date: {datetime.now(UTC).isoformat(timespec='seconds')}; code: {_code_version()} "
        "at the start",
        f"- Machine: {platform.machine()}, nproc {os.cpu_count()}, Python "
        f"{platform.python_version()}, aiohttp {aiohttp.__version__}, aiocouch "
        f"{getattr(aiocouch, '__version__', '4.0.1')}; load average before the run: {_load()}",
        f"- Server: {server}, a separate process whose CPU is not counted.",
        f"- {len(found)} fresh processes one after the other, each {rounds} rounds at scale "
        f"{scale}; per round: "
        + "; ".join(
            f"{', '.join(f'`{op}`' for op in ops)}: {_calls(name, calls, scale)} each, "
            f"alternating in blocks of {block}"
            for name, ops, calls, block in GROUPS
        )
        + ". CPU = the client process's `time.process_time()` per operation.",
        "",
        "| operation | call | CPU µs/op (median) | min-max over rounds |",
        "|---|---|---:|---:|",
    ]
    for name, ops, _, _ in GROUPS:
        for op in ops:
            values = [v for process in found for v in process[op]]
            lines.append(
                f"| {name} | {LABELS[op]} | {statistics.median(values):.0f} | "
                f"{min(values):.0f}-{max(values):.0f} |"
            )
    lines += [
        "",
        "| pair | ratio of medians | median of per-round ratios | per process | met |",
        "|---|---:|---:|---|---|",
    ]
    for pair in PAIRS:
        by_medians, by_rounds, per_process = ratios(found, pair)
        lines.append(
            f"| {pair.label} | **{by_medians:.2f}** | **{by_rounds:.2f}** | "
            f"{' '.join(f'{r:.2f}' for r in per_process)} | "
            f"{verdict(pair, by_medians, by_rounds)} |"
        )
    lines += ["", NOTES, END_MARK]
    return "\n".join(lines)


NOTES = """A target is met when both the ratio of medians and the median of per-round ratios
are within it. `save_many` is given `chunk_size=1000`, so that both sides send one request
(the default, 500, sends two). The core, aiohttp and raw sides each build their 1,000 new
documents as `{"_id": new_id(), **doc}` inside the timed call; `save_many` gets 1,000 models
built beforehand, without ids. Against real CouchDB: `COUCHDB_URL=http://user:pass@host:5984
.venv/bin/python -m bench.bulk` (the first server named; the benchmark makes and drops its own
`bench_bulk_*` databases there).

Before issue 10's changes (main at `79b0c51`, the same benchmark with `--processes 3 --rounds
3`, on the same loaded machine): `save_many` 53.9 ms, `bulk_docs` 32.6 ms, aiohttp 8.9 ms, raw
6.9 ms (bulk_docs at 4.70x the raw floor and 3.67x aiohttp, save_many at 7.76x the floor and
1.65x bulk_docs); query of 100 models 2.41x the view read, query_range 2.50x; get 1.33x, save
1.36x. Most of `bulk_docs`' cost was the search for NaN in documents holding a `None` (a
recursive walk in Python: 16 ms per 1,000 documents in a tight loop, 30x their encoding).

Why the targets left open stay open (cProfile of 200 `query` calls against the embedded
server, and tight-loop timings of a page of 100 of its documents, on the loaded machine): each
query is one request (no extra page is read), and of the model side's extra cost per row most
is pydantic's validation of `Record` (its `Decimal`, `datetime`, enum and list fields): the
list `TypeAdapter` took 7.8 µs a document, the same as a call per document (7.9 µs), where the
core's whole row costs about 11-12 µs. `current_models`' checks and copies (type and keys of
every document, the copy that takes `type`, `_id` and `_rev` out) add about 3 µs, the store's
loop and `page_docs` about 1 µs. Validation alone puts the floor near 1.6-1.7x. save_many
must also format datetimes and decimals, check every value, and build a document, a model
and a result per model, where the core copies a dict; hoisting the merging check out of its
loop (round 2) changed nothing measurable."""


def write_section(section: str, path: Path = RESULTS) -> None:
    """Put ``section`` in ``path`` in place of the previous one (or at its end)."""
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(START_MARK) + ".*?" + re.escape(END_MARK), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def kept_section(path: Path = RESULTS) -> str:
    """This benchmark's section of ``path``, for ``python -m bench`` to keep when it writes
    the report again ("" if there is none)."""
    text = path.read_text() if path.exists() else ""
    found = re.search(re.escape(START_MARK) + ".*?" + re.escape(END_MARK), text, re.DOTALL)
    return "" if found is None else "\n" + found.group(0) + "\n"


def _code_version() -> str:
    root = Path(__file__).resolve().parent.parent
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
    return f"git {head or '?'}" + (" + uncommitted changes in src/" if dirty else " (src/ clean)")


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _external_server() -> tuple[str, tuple[str, str]] | None:
    """The first server of ``COUCHDB_URL``, without its credentials, and them."""
    value = os.environ.get("COUCHDB_URL", "").split(",")[0].strip()
    if not value:
        return None
    parts = urlsplit(value)
    netloc = parts.hostname or "127.0.0.1"
    if parts.port:
        netloc += f":{parts.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return url, (parts.username or "", parts.password or "")


async def parent(args: argparse.Namespace, command: str) -> str:
    load = _load()

    async def run(url: str, auth: tuple[str, str], server: str) -> str:
        await seed(url, auth)
        found = []
        try:
            for number in range(args.processes):
                found.append(await run_child(url, auth[0], auth[1], args.rounds, args.scale))
                print(f"process {number + 1}/{args.processes} done", file=sys.stderr, flush=True)
        finally:
            await drop(url, auth)
        report = render(found, command=command, server=server, rounds=args.rounds, scale=args.scale)
        return report.replace(
            f"load average before the run: {_load()}", f"load average before the run: {load}"
        )

    external = _external_server()
    if external is not None:
        async with tac.CouchDB(external[0], auth=external[1]) as couch:
            version = (await couch.info()).get("version", "?")
        return await run(*external, f"CouchDB {version} at {external[0]} (COUCHDB_URL)")
    with DevServer(in_memory=True) as server:
        return await run(server.url, server.auth, "embedded pouchdb-server (DevServer, in memory)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bulk", description=__doc__)
    parser.add_argument("--child", nargs=2, metavar=("URL", "USER"), help=argparse.SUPPRESS)
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the calls")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the report to update")
    args = parser.parse_args(argv)
    if args.child:
        url, user = args.child
        measured = asyncio.run(
            measure(url, (user, os.environ[PASSWORD_ENV]), args.rounds, args.scale)
        )
        json.dump(measured, sys.stdout)
        return
    if args.rounds < 1 or args.processes < 1:
        parser.error("--rounds and --processes must be at least 1")
    command = ".venv/bin/python -m bench.bulk" + "".join(
        f" {arg}" for arg in (argv if argv is not None else sys.argv[1:])
    )
    started = time.perf_counter()
    section = asyncio.run(parent(args, command))
    section = section.replace(
        END_MARK, f"\nTotal run time: {time.perf_counter() - started:.0f} s.\n{END_MARK}"
    )
    print(section)
    write_section(section, args.out)


if __name__ == "__main__":
    main()
