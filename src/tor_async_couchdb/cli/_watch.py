"""``health``, ``metrics`` and ``compact``."""

from __future__ import annotations

from typing import Any

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import ops
from ._common import (
    EXIT_FAILED,
    Connection,
    connection_options,
    database_argument,
    err_console,
    json_option,
    log_level_option,
    out_console,
    print_json,
    run,
)
from ._install import _pop_sources, _spec, source_options

__all__ = ["compact", "health", "metrics"]

_NOT_REPORTED = "not reported"


@click.command(short_help="Check server, credentials, database and design documents.")
@database_argument
@source_options
@click.option(
    "--time-limit",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds all checks may take together.",
)
@connection_options()
@json_option
@log_level_option
def health(
    database: str, connection: Connection, time_limit: float, as_json: bool, **options: Any
) -> None:
    """Check that the server is up, the credentials valid, DATABASE reachable and the design
    documents of the given sources present and current. Exit code 0 when healthy, 1 when
    not."""
    run(_health(database, connection, _pop_sources(options), time_limit, as_json))


async def _health(
    database: str, connection: Connection, sources: dict[str, Any], time_limit: float, as_json: bool
) -> int:
    spec = _spec(database, sources, None)
    async with connection.client() as couch:
        report = await ops.check_health(
            couch, database, design_docs=spec.design_docs, time_limit=time_limit
        )
    if as_json:
        print_json(report.as_dict())
    else:
        console = out_console()
        for check in report.checks:
            mark = {True: "ok", False: "FAIL", None: "-"}[check.ok]
            console.print(f"{mark:<5} {check.name:<17} {check.detail}", markup=False)
        console.print("healthy" if report.ok else "unhealthy")
    return 0 if report.ok else EXIT_FAILED


def _size(value: int | None) -> str:
    return _NOT_REPORTED if value is None else f"{value:,} bytes"


def _share(value: float | None) -> str:
    return _NOT_REPORTED if value is None else f"{value:.1%}"


def _count(value: int | None) -> str:
    return _NOT_REPORTED if value is None else f"{value:,}"


@click.command(short_help="Show counts, sizes, fragmentation and conflicts.")
@database_argument
@click.option(
    "--no-conflicts",
    is_flag=True,
    help="Do not count conflicted documents (counting reads every document once).",
)
@connection_options()
@json_option
@log_level_option
def metrics(database: str, connection: Connection, no_conflicts: bool, as_json: bool) -> None:
    """Print DATABASE's document and deleted-document counts, active and file sizes and
    fragmentation (of the database and of each design document's views), update sequence and
    number of conflicted documents. A figure the server does not give is "not reported"
    (null in JSON)."""
    run(_metrics(database, connection, not no_conflicts, as_json))


async def _metrics(database: str, connection: Connection, conflicts: bool, as_json: bool) -> int:
    async with connection.client() as couch:
        figures = await ops.collect_metrics(couch.database(database), count_conflicts=conflicts)
    if as_json:
        print_json(figures.as_dict())
        return 0
    table = Table(title=f"database {database}", show_header=False, box=None, pad_edge=False)
    for name, value in (
        ("documents", _count(figures.doc_count)),
        ("deleted documents", _count(figures.doc_del_count)),
        ("active size", _size(figures.sizes.active)),
        ("file size", _size(figures.sizes.file)),
        ("fragmentation", _share(figures.sizes.fragmentation)),
        ("update sequence", figures.update_seq),
        ("conflicted documents", "not counted" if not conflicts else _count(figures.conflicted)),
    ):
        table.add_row(name, value)
    console = out_console()
    console.print(table)
    views = Table(
        "design document", "active size", "file size", "fragmentation", box=None, pad_edge=False
    )
    for view in figures.views:
        sizes = view.sizes
        views.add_row(
            view.design_id, _size(sizes.active), _size(sizes.file), _share(sizes.fragmentation)
        )
    if figures.views:
        console.print(views)
    return 0


@click.command(short_help="Compact a database and its views, with progress.")
@database_argument
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=None,
    help="Compact only if the database's fragmentation is above this share (0 to 1, e.g. 0.3).",
)
@click.option(
    "--time-limit",
    type=click.FloatRange(min=1),
    default=3600.0,
    show_default=True,
    help="Seconds to wait for compaction to finish.",
)
@connection_options()
@json_option
@log_level_option
def compact(
    database: str,
    connection: Connection,
    threshold: float | None,
    time_limit: float,
    as_json: bool,
) -> None:
    """Compact DATABASE and the views of each of its design documents, and wait until the
    server is done, with progress."""
    run(_compact(database, connection, threshold, time_limit, as_json))


async def _compact(
    database: str, connection: Connection, threshold: float | None, time_limit: float, as_json: bool
) -> int:
    bars = Progress(
        TextColumn("compacting {task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err_console(),
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def show(step: ops.CompactionProgress) -> None:
        task = tasks.get(step.what)
        if task is None:
            task = tasks[step.what] = bars.add_task(step.what, total=100)
        bars.update(task, completed=step.percent or 0)

    async with connection.client() as couch:
        with bars:
            report = await ops.compact(
                couch.database(database), threshold=threshold, time_limit=time_limit, progress=show
            )
    if as_json:
        print_json(report.as_dict())
        return 0
    console = out_console()
    if not report.compacted:
        console.print(f"not compacted: {report.skipped}", markup=False)
        return 0
    console.print(
        f"compacted {database} in {report.seconds:.1f} s: file size "
        f"{_size(report.before.file)} -> {_size(report.after.file)}",
        markup=False,
    )
    for design_id in report.views:
        console.print(f"compacted the views of {design_id}", markup=False)
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    return 0
