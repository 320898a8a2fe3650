"""The README's first command, as a user runs it: it starts everything, the curl lines it
prints work, and Ctrl-C (SIGINT) leaves no process behind."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from support.commands import curl_lines, read_until_ready

ROOT = Path(__file__).resolve().parents[2]
URL_LINE = re.compile(r"fruit store listening on (http://\S+)")

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_run_sample_serves_its_printed_curl_lines_and_stops_clean(
    tmp_path: Path, stop: signal.Signals
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "COUCHDB_URL"}  # the embedded server
    command = [str(ROOT / "scripts" / "run-sample"), "--port", "0", "--in-memory",
               "--state-dir", str(tmp_path)]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        printed = read_until_ready(process, time.monotonic() + 240)
        match = next(m for m in map(URL_LINE.search, printed) if m)
        assert match.group(1).startswith("http://127.0.0.1:")
        keys_line = next(line for line in printed if line.startswith("keys: "))
        keyring = Path(keys_line.split()[1])
        assert keyring.is_relative_to(tmp_path)  # under --state-dir
        assert keyring.stat().st_mode & 0o777 == 0o600  # readable by its owner only
        assert "generated for this run" in keys_line
        family = [process.pid, *(c.pid for c in psutil.Process(process.pid).children(True))]
        assert len(family) >= 2  # the service and the embedded server it started

        create, by_color, health, metrics = curl_lines(printed)
        fruit = json.loads(subprocess.run(create, capture_output=True, check=True).stdout)
        assert (fruit["color"], len(fruit["fruit_id"])) == ("red", 32)
        assert fruit["owner_token"]  # shown once; stored hashed
        listed = json.loads(subprocess.run(by_color, capture_output=True, check=True).stdout)
        assert [f["fruit_id"] for f in listed["fruits"]] == [fruit["fruit_id"]]
        assert (
            json.loads(subprocess.run(health, capture_output=True, check=True).stdout)["status"]
            == "ok"
        )
        counted = json.loads(subprocess.run(metrics, capture_output=True, check=True).stdout)
        assert "/v1.0/fruits" in counted["routes"]
    finally:
        process.send_signal(stop)
        code = process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
    assert code == 0
    time.sleep(0.2)
    left = [pid for pid in family if psutil.pid_exists(pid)
            and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]  # fmt: skip
    assert left == []
