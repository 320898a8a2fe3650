"""A short load run against a started fruit store, with the end-of-run consistency check."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from samples.loadgen import __main__ as loadgen
from samples.loadgen.plan import Plan, parse_mix

from support.fruit_service import Running, running_service

__all__ = ["running_service"]  # a fixture, imported for pytest


async def test_a_short_mixed_load_loses_nothing(running_service: Running) -> None:
    plan = Plan(url=running_service.client.base, users=12, concurrency=12, duration=4.0,
                hot_set=2, seed=7)  # fmt: skip
    output = io.StringIO()
    report = await loadgen.run(plan, console=Console(file=output), live=False)
    assert report["server_errors_5xx"] == 0
    assert report["no_answer"] == 0
    assert set(report["operations"]) >= {"create", "read", "eat"}
    check = report["consistency"]
    assert check["ok"], check
    assert check["increments_acknowledged"] == report["operations"]["eat"]["statuses"]["200"]
    assert check["lost_updates"] == check["resurrected_deletes"] == 0
    # What the service counted is what the load generator reports.
    assert report["conflicts_retried"] == running_service.metrics.counter("conflicts_retried")
    for op in report["operations"].values():
        assert op["p50_ms"] <= op["p95_ms"] <= op["p99_ms"] <= op["max_ms"]


def test_the_command_line_writes_its_report(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        loadgen.parse_args(["--mix", "fly=3"])
    assert parse_mix("read=3, eat=1") == {"read": 3, "eat": 1}
    with pytest.raises(ValueError, match="at least one"):
        parse_mix("read=0")
    plan, args = loadgen.parse_args(["--url", "http://x:1", "--report", str(tmp_path / "r.json")])
    assert (plan.url, args.report) == ("http://x:1", tmp_path / "r.json")
    json.dumps(loadgen._plan_json(plan))  # the plan goes into the JSON report as it is
