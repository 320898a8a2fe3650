"""``install``, ``status`` and ``delete-database``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from .. import KeyRing, Protection, ops
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

__all__ = ["delete_database", "install", "status"]

F = TypeVar("F", bound=Callable[..., Any])
logger = logging.getLogger("tor_async_couchdb.cli")

_LOG_EVERY = 10.0
_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


def source_options(command: F) -> F:
    """Where design and seed documents come from; each option may be given several times."""
    options = [
        click.option(
            "--models",
            "model_modules",
            multiple=True,
            metavar="MODULE",
            help="Python module whose models give design documents (one view each). The "
            "current directory is on the module path.",
        ),
        click.option(
            "--design-dir",
            "design_dirs",
            multiple=True,
            type=_DIR,
            help="Folder of design documents, one JSON file each.",
        ),
        click.option(
            "--design-package",
            "design_packages",
            multiple=True,
            metavar="PACKAGE:FOLDER",
            help="Folder of design documents inside an installed Python package.",
        ),
        click.option(
            "--seed-dir",
            "seed_dirs",
            multiple=True,
            type=_DIR,
            help="Folder of seed documents (JSON files, one document or a list each); each "
            "needs a stable _id and is written once.",
        ),
        click.option(
            "--seed-package",
            "seed_packages",
            multiple=True,
            metavar="PACKAGE:FOLDER",
            help="Folder of seed documents inside an installed Python package.",
        ),
        click.option(
            "--signing-keyring",
            "signing_keyring",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            metavar="FILE",
            help="The service's key ring (JSON): signing is configured, so the server-side "
            "write guard is installed and seed documents are signed. Its secrets are never "
            "printed.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def security_options(command: F) -> F:
    """Who may administer, read and write the database."""
    for flag, help_text in reversed(
        [
            ("--admin-name", "User who administers the database."),
            ("--admin-role", "Role whose users administer the database."),
            ("--member-name", "User who may read and write."),
            ("--member-role", "Role whose users may read and write."),
        ]
    ):
        command = click.option(flag, multiple=True, help=help_text + " Repeatable.")(command)
    return command


def _security(options: dict[str, tuple[str, ...]]) -> ops.Security | None:
    if not any(options.values()):
        return None  # nothing asked: _security is left as it is
    return ops.Security(
        admin_names=options["admin_name"],
        admin_roles=options["admin_role"],
        member_names=options["member_name"],
        member_roles=options["member_role"],
    )


def _spec(database: str, sources: dict[str, Any], security: ops.Security | None) -> ops.InstallSpec:
    folders = [*sources["design_dirs"]]
    folders += [ops.package_folder(spec) for spec in sources["design_packages"]]
    seeds = [*sources["seed_dirs"]] + [ops.package_folder(s) for s in sources["seed_packages"]]
    keyring = sources.get("signing_keyring")
    signature = None
    if keyring is not None:
        signature = Protection.from_keyring(KeyRing.from_file(keyring)).signature
    return ops.InstallSpec.build(
        database,
        model_modules=sources["model_modules"],
        design_folders=folders,
        seed_folders=seeds,
        security=security,
        signature=signature,
    )


def _pop_sources(kwargs: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "model_modules",
        "design_dirs",
        "design_packages",
        "seed_dirs",
        "seed_packages",
        "signing_keyring",
    )
    return {key: kwargs.pop(key) for key in keys}


class _InstallBars:
    """A progress bar per design document being built (stderr; nothing when not a terminal,
    where ``--log-level info`` gives the same steps as log records)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}
        self.logged_at: dict[str, float] = {}

    def _log(self, step: ops.InstallProgress) -> None:
        # A line per phase, and one every 10 s while an index builds: enough for a log file.
        last = self.logged_at.get(step.design_id)
        if step.phase == "indexing" and last is not None and step.elapsed - last < _LOG_EVERY:
            return
        self.logged_at[step.design_id] = step.elapsed
        counts = f", {step.changes_done}/{step.total_changes} changes" if step.total_changes else ""
        logger.info("%s: %s (%.1f s%s)", step.design_id, step.phase, step.elapsed, counts)

    def __call__(self, step: ops.InstallProgress) -> None:
        self._log(step)
        task = self.tasks.get(step.design_id)
        if task is None:
            task = self.progress.add_task(f"building {step.design_id}", total=None)
            self.tasks[step.design_id] = task
        if step.total_changes:
            self.progress.update(task, total=step.total_changes, completed=step.changes_done)
        if step.phase in ("checked", "swapped"):
            self.progress.update(
                task, total=1, completed=1, description=f"{step.phase} {step.design_id}"
            )


def _bars() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err_console(),
        transient=True,
    )


def _print_plan(plan: ops.Plan, *, dry_run: bool) -> None:
    console = out_console()
    if dry_run:
        console.print("dry run: nothing was written; the install would do this:")
    for item in plan.items:
        console.print(f"{item.action:<10} {item.kind:<9} {item.id}", markup=False)
    counts = plan.counts()
    console.print(
        f"{counts['created']} created, {counts['updated']} updated, {counts['unchanged']} unchanged"
    )


@click.command(short_help="Create or upgrade a database (idempotent, no query blocked).")
@database_argument
@source_options
@security_options
@click.option(
    "--dry-run", is_flag=True, help="Print the plan (created, updated, unchanged); write nothing."
)
@click.option(
    "--warm-up-timeout",
    type=click.FloatRange(min=1),
    default=3600.0,
    show_default=True,
    help="Seconds a changed view's index may take to build before the install fails.",
)
@connection_options()
@json_option
@log_level_option
def install(
    database: str,
    connection: Connection,
    dry_run: bool,
    warm_up_timeout: float,
    as_json: bool,
    **options: Any,
) -> None:
    """Create or upgrade DATABASE: the database, its _security, its design documents and its
    seed documents. Running it again changes nothing.

    A changed design document is built under a temporary name while the old one keeps
    answering queries, checked by querying it once, then swapped in. Every input file is
    checked before anything is written.
    """
    sources = _pop_sources(options)
    security = _security(options)
    run(
        _install(
            database=database,
            connection=connection,
            sources=sources,
            security=security,
            dry_run=dry_run,
            warm_up_timeout=warm_up_timeout,
            as_json=as_json,
        )
    )


async def _install(
    *,
    database: str,
    connection: Connection,
    sources: dict[str, Any],
    security: ops.Security | None,
    dry_run: bool,
    warm_up_timeout: float,
    as_json: bool,
) -> int:
    spec = _spec(database, sources, security)
    async with connection.client() as couch:
        if dry_run:
            plan = await ops.plan_install(couch, spec)
            if as_json:
                print_json({**plan.as_dict(), "dry_run": True})
            else:
                _print_plan(plan, dry_run=True)
            return 0
        with _bars() as bars:
            report = await ops.install(
                couch, spec, warm_up_timeout=warm_up_timeout, progress=_InstallBars(bars)
            )
    if as_json:
        print_json({**report.as_dict(), "dry_run": False})
        return 0
    _print_plan(report.plan, dry_run=False)
    for warm in report.warm_ups:
        source = "_active_tasks" if warm.progress_from == "active_tasks" else "polling the view"
        out_console().print(
            f"built {warm.design_id} in {warm.seconds:.1f} s before the swap "
            f"(progress from {source})",
            markup=False,
        )
    if report.warm_ups:
        cleanup = (
            "dropped the unused indexes"
            if report.view_cleanup
            else "skipped (this server would drop the index just built)"
        )
        out_console().print(f"_view_cleanup: {cleanup}", markup=False)
    return 0


@click.command(short_help="Show what a database holds and what differs.")
@database_argument
@source_options
@connection_options()
@json_option
@log_level_option
def status(database: str, connection: Connection, as_json: bool, **options: Any) -> None:
    """Show what DATABASE holds and how it differs from the given sources: each design and
    seed document is current, differs or missing; design documents of the database that no
    source names are listed as extra."""
    run(_status(database, connection, _pop_sources(options), as_json))


_STATE = {"created": "missing", "updated": "differs", "unchanged": "current"}


async def _status(
    database: str, connection: Connection, sources: dict[str, Any], as_json: bool
) -> int:
    spec = _spec(database, sources, None)
    async with connection.client() as couch:
        plan = await ops.plan_install(couch, spec)
        exists = plan.items[0].action == "unchanged"
        db = couch.database(database)
        installed = [d async for d in ops.design_ids(db)] if exists else []
    wanted = {doc["_id"] for doc in spec.design_docs}
    entries = [
        {"kind": item.kind, "id": item.id, "state": _STATE[item.action]} for item in plan.items[1:]
    ]
    entries += [{"kind": "design", "id": i, "state": "extra"} for i in installed if i not in wanted]
    if as_json:
        print_json({"database": database, "exists": exists, "documents": entries})
        return 0
    console = out_console()
    console.print(f"database {database}: {'exists' if exists else 'missing'}", markup=False)
    for entry in entries:
        console.print(f"{entry['state']:<8} {entry['kind']:<7} {entry['id']}", markup=False)
    return 0


@click.command("delete-database", short_help="Delete a database (asks first, or --yes).")
@database_argument
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--missing-ok", is_flag=True, help="Succeed if the database does not exist.")
@connection_options()
@log_level_option
def delete_database(database: str, connection: Connection, yes: bool, missing_ok: bool) -> None:
    """Delete DATABASE and every document in it. Asks first, unless --yes; without a
    terminal to ask on, --yes is required."""
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("not deleting without confirmation: give --yes")
        click.confirm(
            f"Delete database {database} on {connection.url} and all its documents?", abort=True
        )
    run(_delete(database, connection, missing_ok))


async def _delete(database: str, connection: Connection, missing_ok: bool) -> int:
    async with connection.client() as couch:
        db = couch.database(database)
        # Checked first: pouchdb-server answers 200 to deleting a missing database.
        if not await db.exists():
            out_console().print(f"database {database} does not exist", markup=False)
            return 0 if missing_ok else EXIT_FAILED
        await db.delete_database(missing_ok=True)
    out_console().print(f"deleted database {database}", markup=False)
    return 0
