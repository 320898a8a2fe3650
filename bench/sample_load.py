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
        "- Protection on: every fruit is signed (HMAC-SHA256), its note encrypted (AES-256-GCM) "
        "and its owner token hashed with argon2id (19 MiB, t=2) at each create and checked at "
        "each delete, in a worker thread: that CPU is in the service's CPU below, not in the "
        "profile of its event-loop thread. Fruits are mergeable models (counter, set, clock "
        "stamps), sealed at each write.",
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


MULTI_HEADING = "## The multi-master demo"


def run_multimaster(duration: float, users: int, workdir: Path) -> tuple[dict[str, Any], float]:
    """The multi-master demo (three instances) at this size: its report and wall time."""
    report_path = workdir / "multimaster.json"
    command = [sys.executable, "-m", "samples.multimaster", "--instances", "3",
               "--duration", f"{duration:g}", "--users", str(users), "--concurrency", str(users),
               "--no-live", "--state-dir", str(workdir), "--report", str(report_path)]  # fmt: skip
    started = time.monotonic()
    with (workdir / "multimaster.log").open("w") as log:
        subprocess.run(command, cwd=ROOT, stdout=log, stderr=log, check=False, timeout=1800)
    return json.loads(report_path.read_text()), time.monotonic() - started


def render_multimaster(report: dict[str, Any], duration: float, users: int, wall: float) -> str:
    converged, check = report["before_check"], report["consistency"]
    reconcilers = converged["reconcilers"]
    lines = [
        MULTI_HEADING,
        "",
        "Regenerate: `.venv/bin/python -m bench.sample_load --part multimaster "
        f"--mm-duration {duration:g} --mm-users {users}` (runs `python -m samples.multimaster "
        f"--instances 3 --duration {duration:g} --users {users} --concurrency {users}`).",
        "",
        f"- Date: {datetime.now(UTC).isoformat(timespec='seconds')}; load average after "
        f"{_load_average()}; the whole demo took {wall:.0f} s (three embedded servers start, "
        "install, replicate, load, converge, check).",
        "- Three fruit stores in one process, each on its own embedded server (three Node "
        "processes), continuous replication both ways between every pair, a reconciler per "
        f"instance; {users} virtual users spread over the three, mix "
        f"`{_mix_text(report['plan']['mix'])}` on a hot set of "
        f"{report['plan']['hot_set']} fruits.",
        "",
        f"**{report['requests']} requests in {report['elapsed_s']} s: "
        f"{report['requests_per_second']} requests/s over the three; 5xx: "
        f"{report['server_errors_5xx']}; errors by status: "
        f"{report['errors_by_status'] or 'none'}.**",
        "",
        "| operation | count | /s | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, op in report["operations"].items():
        lines.append(f"| {name} | {op['count']} | {op['per_second']} | {op['p50_ms']} | "
                     f"{op['p95_ms']} | {op['p99_ms']} | {op['max_ms']} |")  # fmt: skip
    verdict = "converged" if converged["converged"] else "DID NOT CONVERGE"
    lines += [
        "",
        f"Convergence: **{verdict} {converged['seconds']} s after the load ended**: "
        f"{converged['documents']} documents, the same bodies and revisions on the three "
        f"servers ({converged['documents_differing']} differing), "
        f"{converged['conflicts_left']} conflicts left.",
        "",
        f"Consistency, checked through each instance: **"
        f"{'no lost updates' if check['lost_updates'] == 0 else 'LOST UPDATES'}**: "
        f"{check['increments_acknowledged']} acknowledged increments, "
        f"{check['lost_updates']} lost, {check['phantom_eaters']} phantom set members, "
        f"{check['counter_mismatches']} counter mismatches, "
        f"{check['resurrected_deletes']} resurrected deletes, {check['lost_creates']} lost "
        f"creates (instances: {['ok' if i['ok'] else 'FAILED' for i in check['instances']]}).",
        "",
        "| instance | conflicts seen by its reconciler | merges written | raced | "
        "quarantined | unresolvable | merged before a write (service) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rec in reconcilers.items():
        lines.append(f"| {name} | {rec['conflicts']} | {rec['resolved']} | {rec['raced']} | "
                     f"{rec['quarantined']} | {sum(rec['unresolvable'].values())} | "
                     f"{converged['merged_before_write'][name]} |")  # fmt: skip
    lines += [
        "",
        "(*raced*: another writer, often the other data centers' reconcilers writing the same "
        "deterministic merge, got there first. *Merged before a write*: an update found its "
        "fruit conflicted and merged it before changing it.)",
        "",
    ]
    return "\n".join(lines)


def _mix_text(mix: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in mix.items())


def _sections(path: Path) -> tuple[str, str]:
    """The single-instance part and the multi-master part of the existing file."""
    text = path.read_text() if path.exists() else ""
    single, found, multi = text.partition(MULTI_HEADING)
    return single.rstrip() + "\n", (found + multi).rstrip() + "\n" if found else ""


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sample_load", description=__doc__)
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--part", choices=("single", "multimaster", "both"), default="both")
    parser.add_argument("--mm-duration", type=float, default=60.0)
    parser.add_argument("--mm-users", type=int, default=15)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    single, multi = _sections(args.out)
    if args.part in ("single", "both"):
        load_before = _load_average()
        result = run(args.duration, args.concurrency)
        single = render(result, args.duration, args.concurrency, load_before)
        args.out.with_suffix(".json").write_text(json.dumps(result["report"], indent=2) + "\n")
    if args.part in ("multimaster", "both"):
        with tempfile.TemporaryDirectory() as workdir:
            report, wall = run_multimaster(args.mm_duration, args.mm_users, Path(workdir))
        multi = render_multimaster(report, args.mm_duration, args.mm_users, wall)
        mm_json = args.out.with_name("SAMPLE-LOAD-MULTIMASTER.json")
        mm_json.write_text(json.dumps(report, indent=2) + "\n")
    args.out.write_text(single.rstrip() + "\n\n" + multi if multi else single)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
