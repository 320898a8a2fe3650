"""The multi-master demo at a small scale: two fruit stores on replicating embedded servers,
driven at once on a shared hot set, converge with no conflict left and no write lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from support.commands import curl_lines, read_until_ready

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.embedded_only]


def test_two_instances_converge_and_lose_no_acknowledged_write(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    command = [sys.executable, "-m", "samples.multimaster", "--instances", "2",
               "--duration", "8", "--users", "8", "--concurrency", "8", "--hot-set", "2",
               "--seed", "7", "--no-live", "--converge-within", "90",
               "--state-dir", str(tmp_path), "--report", str(report_path)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "COUCHDB_URL"}
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False,
                          timeout=240)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(report_path.read_text())
    converged = report["before_check"]
    assert converged["converged"]
    assert (converged["documents_differing"], converged["conflicts_left"]) == (0, 0)
    check = report["consistency"]
    assert [instance["ok"] for instance in check["instances"]] == [True, True]
    assert check["increments_acknowledged"] > 0
    assert check["lost_updates"] == 0
    assert report["server_errors_5xx"] == 0
    # Not vacuous: the instances did write the same fruits at once, and merged the conflicts.
    merges = sum(r["resolved"] for r in converged["reconcilers"].values())
    merges += sum(converged["merged_before_write"].values())
    assert merges > 0
    assert "fruit store on http://127.0.0.1:" in done.stdout
    assert "keys: " in done.stdout
    # The servers it started ended with it.
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before


def test_serve_mode_prints_working_lines_and_ctrl_c_leaves_no_process(tmp_path: Path) -> None:
    command = [str(ROOT / "scripts" / "run-multimaster"), "--serve", "--instances", "2",
               "--state-dir", str(tmp_path)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "COUCHDB_URL"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        printed = read_until_ready(process, time.monotonic() + 240)
        family = [process.pid, *(c.pid for c in psutil.Process(process.pid).children(True))]
        assert len(family) >= 3  # the demo and its two embedded servers
        create, listed = curl_lines(printed)[:2]
        fruit = json.loads(subprocess.run(create, capture_output=True, check=True).stdout)
        deadline = time.monotonic() + 30
        while True:  # the second instance lists it once replication has copied it
            page = json.loads(subprocess.run(listed, capture_output=True, check=True).stdout)
            if fruit["fruit_id"] in [f["fruit_id"] for f in page["fruits"]]:
                break
            assert time.monotonic() < deadline, "not replicated within 30 s"
            time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
        if process.stdout is not None:
            process.stdout.close()
    assert code == 0
    time.sleep(0.2)
    left = [pid for pid in family if psutil.pid_exists(pid)
            and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]  # fmt: skip
    assert left == []
