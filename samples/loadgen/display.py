"""The live progress display and the final table (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .stats import Recorder, percentile

_RECENT = 500  # latencies shown live are those of the last requests, not the whole run


def progress(recorder: Recorder, duration: float) -> Group:
    """What the live display shows now: totals, and per operation counts and recent p95."""
    elapsed = recorder.elapsed
    rate = recorder.total / elapsed if elapsed else 0.0
    head = Text(
        f"{elapsed:5.1f}/{duration:.0f} s   {recorder.total} requests   {rate:.0f}/s   "
        f"5xx {recorder.count_where(lambda s: s >= 500)}   "
        f"no answer {recorder.count_where(lambda s: s == 0)}   "
        f"conflicts retried {recorder.conflicts_retried}"
    )
    table = Table("operation", "count", "recent p95 ms", "errors", box=None)
    for name, stats in sorted(recorder.operations.items()):
        recent = sorted(stats.latencies[-_RECENT:])
        errors = sum(n for s, n in stats.statuses.items() if s == 0 or s >= 400)
        table.add_row(name, str(len(stats.latencies)), f"{percentile(recent, 0.95) * 1000:.1f}",
                      str(errors))  # fmt: skip
    return Group(head, table)


def final(console: Console, report: dict[str, Any]) -> None:
    """Print the report as tables."""
    table = Table(title=f"{report['requests']} requests in {report['elapsed_s']} s: "
                  f"{report['requests_per_second']}/s")  # fmt: skip
    for column in ("operation", "count", "/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"):
        table.add_column(column, justify="left" if column == "operation" else "right")
    for name, op in report["operations"].items():
        errors = ", ".join(f"{s}: {n}" for s, n in op["errors"].items()) or "-"
        table.add_row(name, str(op["count"]), str(op["per_second"]), str(op["p50_ms"]),
                      str(op["p95_ms"]), str(op["p99_ms"]), str(op["max_ms"]), errors)  # fmt: skip
    console.print(table)
    console.print(
        f"5xx: {report['server_errors_5xx']}   no answer: {report['no_answer']}   "
        f"errors by status: {report['errors_by_status'] or 'none'}   "
        f"conflicts retried (inside the service): {report['conflicts_retried']}"
    )
    check = report.get("consistency")
    if check is not None:
        verdict = "[green]consistent[/green]" if check["ok"] else "[red]INCONSISTENT[/red]"
        details = ", ".join(f"{k} {v}" for k, v in check.items() if k not in ("ok", "instances"))
        console.print(f"check: {verdict}: {details}")
