"""The fruit store under load: requests/s, latency per operation, and where the service's CPU goes.

``.venv/bin/python -m bench.sample_load [--duration 120] [--concurrency 50]`` starts the fruit
store (on the embedded server, profiled by pyinstrument), runs the load generator against it
with 30% of the operations incrementing the counter and set of a hot set of 5 fruits, stops the
service with SIGINT and writes ``bench/SAMPLE-LOAD.md`` (and the raw report beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from pyinstrument.frame import Frame
from pyinstrument.session import Session

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "SAMPLE-LOAD.md"
MIX = "create=10,read=35,update=10,delete=5,list=10,eat=30"
LIBRARY = str(ROOT / "src" / "tor_async_couchdb") + os.sep
URL_LINE = re.compile(r"fruit store listening on (http://\S+)")


# Who owns a sample: the nearest frame of one of these, walking up from the sampled frame.
# Frames of anything else (pydantic, orjson, json, logging, sockets...) count for the code that
# called them: pydantic under the library is the library's work, under Tornado Tornado's.
OWNERS = (
    ("tor_async_couchdb.tornado", lambda path: path == LIBRARY + "tornado.py"),
    ("tor_async_couchdb", lambda path: path.startswith(LIBRARY)),
    ("the sample", lambda path: path.startswith(str(ROOT / "samples") + os.sep)),
    ("Tornado", lambda path: f"{os.sep}tornado{os.sep}" in path),
    ("asyncio event loop", lambda path: f"{os.sep}asyncio{os.sep}" in path),
)


@dataclass(frozen=True, slots=True)
class CPUShare:
    """The service's sampled busy time (seconds) by owner; the loop's waits left out."""

    by_owner: dict[str, float]

    @property
    def busy(self) -> float:
        return sum(self.by_owner.values())

    def share(self, *owners: str) -> float:
        part = sum(self.by_owner.get(owner, 0.0) for owner in owners)
        return part / self.busy if self.busy else 0.0


def _owner(frame: Frame, inherited: str) -> str:
    path = frame.file_path or ""
    return next((name for name, owns in OWNERS if owns(path)), inherited)


def _is_idle(frame: Frame) -> bool:
    # The event loop waiting for sockets: not CPU.
    return (frame.file_path or "").endswith("selectors.py") and frame.function == "select"


def cpu_share(session: Session) -> CPUShare:
    """Attribute every sample's self time to the nearest owning frame above it."""
    root = session.root_frame()
    by_owner: dict[str, float] = {}
    stack: list[tuple[Frame, str]] = [(root, "other")] if root is not None else []
    while stack:
        frame, inherited = stack.pop()
        if _is_idle(frame):
            continue
        owner = _owner(frame, inherited)
        own = frame.time - sum(child.time for child in frame.children)
        by_owner[owner] = by_owner.get(owner, 0.0) + own
        stack.extend((child, owner) for child in frame.children)
    return CPUShare(by_owner)


def _start_service(workdir: Path) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "samples.fruit_store", "--port", "0", "--in-memory",
               "--state-dir", str(workdir), "--profile", str(workdir / "profile.txt")]  # fmt: skip
    log = (workdir / "service.log").open("w")
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    log.close()
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            match = URL_LINE.search(lines.get(timeout=1))
        except queue.Empty:
            continue
        if match:
            return process, match.group(1)
    process.kill()
    raise SystemExit("the service did not start within 60 s")


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def run(duration: float, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sample-load-") as tmp:
        workdir = Path(tmp)
        service, url = _start_service(workdir)
        try:
            me = psutil.Process(service.pid)
            (node,) = [c for c in me.children(recursive=True) if "node" in c.name()]
            before = (_cpu(me), _cpu(node))
            load_cmd = [sys.executable, "-m", "samples.loadgen", "--url", url, "--duration",
                        str(duration), "--concurrency", str(concurrency), "--users",
                        str(concurrency), "--mix", MIX, "--hot-set", "5", "--no-live",
                        "--report", str(workdir / "load.json")]  # fmt: skip
            started = time.monotonic()
            loadgen = psutil.Popen(load_cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
            load_cpu = 0.0
            while loadgen.poll() is None:
                load_cpu = max(load_cpu, _cpu(loadgen))
                time.sleep(0.5)
            wall = time.monotonic() - started
            after = (_cpu(me), _cpu(node))
        finally:
            service.send_signal(signal.SIGINT)
            service.wait(timeout=60)
            if service.stdout is not None:
                service.stdout.close()
        report = json.loads((workdir / "load.json").read_text())
        session = Session.load(str(workdir / "profile.pyisession"))
        keep = ROOT / "bench" / ".work"  # the profile, for a closer look (not committed)
        keep.mkdir(exist_ok=True)
        session.save(str(keep / "sample-load.pyisession"))
        share = cpu_share(session)
    return {
        "report": report,
        "exit_code": loadgen.returncode,
        "wall_s": wall,
        "service_cpu_s": after[0] - before[0],
        "server_cpu_s": after[1] - before[1],
        "loadgen_cpu_s": load_cpu,
        "share": share,
        "profiled_cpu_s": session.cpu_time,
    }


def _load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def render(result: dict[str, Any], duration: float, concurrency: int, load_before: str) -> str:
    report, share = result["report"], result["share"]
    check = report["consistency"]
    requests = report["requests"]
    lines = [
        "# The fruit store under load",
        "",
        "Regenerate (from the repository root, on a quiet machine): "
        f"`.venv/bin/python -m bench.sample_load --duration {duration:g} "
        f"--concurrency {concurrency}`",
        "",
        f"- Date: {datetime.now(UTC).isoformat(timespec='seconds')}; machine: "
        f"{platform.machine()}, {os.cpu_count()} CPUs shared with other work; load average "
        f"(1, 5, 15 min) before {load_before}, after {_load_average()}; run at niceness "
        f"{os.nice(0)}.",
        "- Service: `python -m samples.fruit_store --in-memory` (one process, profiled by "
        "pyinstrument at 1 ms), on the embedded pouchdb-server (in memory, its own process).",
        f"- Load: `python -m samples.loadgen`, {concurrency} virtual users, at most "
        f"{concurrency} requests in flight, {duration:g} s, mix `{MIX}` (30% `eat`: counter "
        "and set increments of a hot set of 5 fruits; `update` changes the colour of a random "
        "fruit, hot ones included).",
        "",
        f"**{requests} requests in {report['elapsed_s']} s: {report['requests_per_second']} "
        f"requests/s; 5xx: {report['server_errors_5xx']}; no answer: {report['no_answer']}; "
        f"errors by status: {report['errors_by_status'] or 'none'}; conflicts retried inside "
        f"the service: {report['conflicts_retried']}.**",
        "",
        "| operation | count | /s | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, op in report["operations"].items():
        lines.append(f"| {name} | {op['count']} | {op['per_second']} | {op['p50_ms']} | "
                     f"{op['p95_ms']} | {op['p99_ms']} | {op['max_ms']} |")  # fmt: skip
    verdict = "consistent" if check["ok"] else "INCONSISTENT"
    lines += [
        "",
        f"Consistency check: **{verdict}**: {check['increments_acknowledged']} acknowledged "
        f"increments, {check['lost_updates']} lost updates, {check['phantom_eaters']} "
        f"phantom set members, {check['counter_mismatches']} counter mismatches; "
        f"{check['deletes_acknowledged']} acknowledged deletes, "
        f"{check['resurrected_deletes']} resurrected; {check['lost_creates']} lost creates.",
        "",
        "## Where the CPU goes",
        "",
        "| process | CPU s | CPU ms per request |",
        "|---|---:|---:|",
    ]
    for name, key in (("service (Python)", "service_cpu_s"), ("pouchdb-server (Node)",
                      "server_cpu_s"), ("load generator", "loadgen_cpu_s")):  # fmt: skip
        lines.append(f"| {name} | {result[key]:.1f} | {result[key] / requests * 1000:.2f} |")
    library = share.share("tor_async_couchdb", "tor_async_couchdb.tornado")
    lines += [
        "",
        f"Of the service's busy time ({share.busy:.1f} s of pyinstrument samples, the event "
        f"loop's waits for sockets left out), **{library:.0%} is inside tor_async_couchdb**: "
        "its own code and what it calls (pydantic, orjson, sockets). Each sample counts for "
        "the nearest frame of one of these owners above it:",
        "",
        "| owner | share of busy time |",
        "|---|---:|",
    ]
    for owner, _ in sorted(share.by_owner.items(), key=lambda item: -item[1]):
        lines.append(f"| {owner} | {share.share(owner):.1%} |")
    lines += [
        "",
        "(`tor_async_couchdb.tornado` is the library's Tornado helpers: error mapping, metrics, "
        "access log; `other` is what no owner called, such as the interpreter's start. The "
        "samples are of wall time on a shared machine: when the service waits for a CPU, the "
        "sample counts for the code it was running. pyinstrument measured "
        f"{result['profiled_cpu_s']:.1f} s of CPU for the profiled span.)",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sample_load", description=__doc__)
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    load_before = _load_average()
    result = run(args.duration, args.concurrency)
    args.out.write_text(render(result, args.duration, args.concurrency, load_before))
    args.out.with_suffix(".json").write_text(json.dumps(result["report"], indent=2) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()
