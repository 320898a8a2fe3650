"""``rotate``: re-encrypt and re-sign a database's documents under the key ring's active key."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from .. import KeyRing, Protection, RotationProgress, ops
from .._protect import DEFAULT_ENV_VAR
from ._common import (
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

__all__ = ["rotate"]

logger = logging.getLogger("tor_async_couchdb.cli")


class _RotationBars:
    """A line per model on stderr (counts as they grow; nothing when not a terminal, where
    ``--log-level info`` logs each page instead)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def for_model(self, type_name: str) -> Any:
        task = self.progress.add_task(f"{type_name}: starting", total=None)
        self.tasks[type_name] = task

        def report(step: RotationProgress) -> None:
            state = "done" if step.done else "rotating"
            counts = f"{step.seen} read, {step.rotated} rotated, {step.skipped} skipped"
            logger.info("%s: %s (%s, to key %s)", type_name, state, counts, step.key_id)
            self.progress.update(task, description=f"{type_name}: {state}, {counts}")

        return report


def _keyring(path: Path | None) -> KeyRing:
    return KeyRing.from_file(path) if path is not None else KeyRing.from_env()


@click.command(short_help="Re-encrypt and re-sign documents under the active key.")
@database_argument
@click.option(
    "--models",
    "model_modules",
    multiple=True,
    required=True,
    metavar="MODULE",
    help="Python module whose models are rotated (all of its models; repeatable). The current "
    "directory is on the module path.",
)
@click.option(
    "--keyring",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help=f"The service's key ring (JSON); default: the environment variable {DEFAULT_ENV_VAR}. "
    "Its secrets are never printed.",
)
@click.option(
    "--page-size",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Documents read and written per request.",
)
@click.option(
    "--quarantine",
    is_flag=True,
    help="Skip (log and count) tampered documents instead of stopping at the first.",
)
@connection_options()
@json_option
@log_level_option
def rotate(
    database: str,
    connection: Connection,
    *,
    model_modules: tuple[str, ...],
    keyring: Path | None,
    page_size: int,
    quarantine: bool,
    as_json: bool,
) -> None:
    """Re-encrypt the encrypted fields and re-sign every document of the models of MODULE in
    DATABASE under the key ring's active key, page by page. Documents already under it are not
    written. Interrupted, it resumes after the last finished page when run again. Once it has
    finished, no document uses an older key: list the older keys as retired."""
    run(
        _rotate(
            database,
            connection,
            model_modules=model_modules,
            keyring=keyring,
            page_size=page_size,
            quarantine=quarantine,
            as_json=as_json,
        )
    )


async def _rotate(
    database: str,
    connection: Connection,
    *,
    model_modules: tuple[str, ...],
    keyring: Path | None,
    page_size: int,
    quarantine: bool,
    as_json: bool,
) -> int:
    models = [model for name in model_modules for model in ops.models_from_module(name)]
    codecs = Protection.from_keyring(_keyring(keyring))  # every input checked before any request
    reports: list[RotationProgress] = []
    async with connection.client(codecs=codecs, quarantine=quarantine) as couch:
        db = couch.database(database)
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=err_console(),
            transient=True,
        ) as progress:
            bars = _RotationBars(progress)
            for model in models:
                report = bars.for_model(model.couch_info().type_name)
                reports.append(await db.rotate(model, page_size=page_size, progress=report))
    rows = [
        {"type": m.couch_info().type_name, "key_id": r.key_id, "seen": r.seen}
        | {"rotated": r.rotated, "skipped": r.skipped}
        for m, r in zip(models, reports, strict=True)
    ]
    if as_json:
        print_json({"database": database, "models": rows})
        return 0
    for row in rows:
        out_console().print(
            f"{row['type']}: {row['seen']} read, {row['rotated']} rotated, "
            f"{row['skipped']} skipped (now under key {row['key_id']})",
            markup=False,
        )
    return 0
