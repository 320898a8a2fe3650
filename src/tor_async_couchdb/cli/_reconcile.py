"""``reconcile``: run the reconciler of one database until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.live import Live
from rich.table import Table

import tor_async_couchdb as tac

from .. import ops
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

__all__ = ["reconcile"]

logger = logging.getLogger("tor_async_couchdb.cli")

# Between log records of the metrics when stderr is not a terminal (no live display there).
_LOG_EVERY = 10.0


@click.command(short_help="Resolve replication conflicts until stopped, with live metrics.")
@database_argument
@click.option(
    "--models",
    "model_modules",
    multiple=True,
    required=True,
    metavar="MODULE",
    help="Python module whose models (tor_async_couchdb.Mergeable) declare how documents "
    "merge; repeatable. The current directory is on the module path.",
)
@click.option(
    "--checkpoint",
    default="tor-async-couchdb-reconciler",
    show_default=True,
    help="Name of the _local document that keeps how far along the changes feed the "
    "reconciler got (one per data center: _local documents are not replicated).",
)
@click.option(
    "--settle",
    type=click.FloatRange(min=0),
    default=0.5,
    show_default=True,
    help="Seconds to wait for more changes before resolving a batch (replication brings a "
    "conflict's leaves one by one).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Changes resolved together, at most.",
)
@click.option(
    "--defer",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds to hold each batch back: give it to every data center's reconciler but "
    "one's, so that they mostly find that one's resolutions already replicated.",
)
@click.option(
    "--refresh",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between updates of the metrics display (and of the lag behind the feed).",
)
@click.option(
    "--keyring",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="The service's key ring (JSON), for a signed database: every leaf is verified "
    "(a leaf that fails is quarantined) and every write signed, tombstones included. "
    f"Default: the environment variable {DEFAULT_ENV_VAR} if set, else none (an "
    "unprotected database). Its secrets are never printed.",
)
@connection_options()
@json_option
@log_level_option
def reconcile(database: str, connection: Connection, as_json: bool, **options: Any) -> None:
    """Follow DATABASE's changes and resolve every conflicted document by the merge policies
    of the models of --models, until SIGINT or SIGTERM (then the checkpoint is saved and the
    final metrics printed; a second signal stops at once). Run one in every data center.

    Bad documents (invalid, tampered, of a newer version, without merge policies) are
    logged, counted and left unresolved; database errors are retried with backoff. With a
    key ring (--keyring or the environment), leaves are verified and every write signed."""
    run(_reconcile(database, connection, options, as_json))


async def _reconcile(
    database: str,
    connection: Connection,
    options: dict[str, Any],
    as_json: bool,
) -> int:
    modules = options["model_modules"]
    models = tac.ModelSet(*[m for name in modules for m in ops.models_from_module(name)])
    keyring = _keyring(options["keyring"])  # every input checked before any request
    codecs = tac.Protection.from_keyring(keyring) if keyring is not None else ()
    async with connection.client() as couch:
        db = couch.database(database)
        checkpoint = tac.LocalDocCheckpoint(db, options["checkpoint"])
        reconciler = tac.Reconciler(
            db,
            models,
            checkpoint=checkpoint,
            codecs=codecs,
            settle=options["settle"],
            batch_size=options["batch_size"],
            defer=options["defer"],
        )
        task = asyncio.create_task(_started(db, reconciler, checkpoint))
        with _signals_stop(reconciler, task):
            await _show_until_done(reconciler, task, options["refresh"])
        final = _figures(reconciler.metrics, None)
    if as_json:
        print_json(final)
    else:
        out_console().print(_table(final, "stopped"))
    return 0


def _keyring(path: Path | None) -> tac.KeyRing | None:
    # (Unlike ``rotate``, a missing key ring is no error: most databases are not signed.)
    if path is not None:
        return tac.KeyRing.from_file(path)
    if os.environ.get(DEFAULT_ENV_VAR):
        return tac.KeyRing.from_env()
    return None


async def _started(
    db: tac.Database, reconciler: tac.Reconciler, checkpoint: tac.LocalDocCheckpoint
) -> None:
    # A missing database or bad credentials fail here, not in the loop (which would retry).
    await db.info()
    logger.info("reconciling %s from sequence %r", db.name, await checkpoint.load())
    await reconciler.run()


@contextlib.contextmanager
def _signals_stop(reconciler: tac.Reconciler, task: asyncio.Task[None]) -> Iterator[None]:
    """SIGINT and SIGTERM stop the reconciler after the batch in hand (or before it starts);
    a second one cancels it (the checkpoint is still saved, bounded in time)."""
    loop = asyncio.get_running_loop()
    stopping = False

    def on_signal() -> None:
        nonlocal stopping
        if stopping:
            task.cancel()
        stopping = True
        reconciler.stop()

    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, on_signal)
    try:
        yield
    finally:
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)


async def _show_until_done(
    reconciler: tac.Reconciler, task: asyncio.Task[None], refresh: float
) -> None:
    console = err_console()
    live = (
        Live(console=console, transient=True, auto_refresh=False) if console.is_terminal else None
    )
    logged_at = -_LOG_EVERY
    with live if live is not None else contextlib.nullcontext():
        while not task.done():
            await asyncio.wait({task}, timeout=refresh)
            if task.done():
                break
            figures = _figures(reconciler.metrics, await _lag(reconciler))
            if live is not None:
                live.update(_table(figures, "reconciling"), refresh=True)
            elif asyncio.get_running_loop().time() - logged_at >= _LOG_EVERY:
                logged_at = asyncio.get_running_loop().time()
                logger.info("reconciler: %s", figures)
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _lag(reconciler: tac.Reconciler) -> int | None:
    try:
        return await reconciler.lag()
    except tac.CouchError:  # the reconciler itself retries and counts errors
        return None


def _figures(metrics: tac.ReconcilerMetrics, lag: int | None) -> dict[str, Any]:
    figures = dataclasses.asdict(metrics)
    if lag is not None:
        figures["lag"] = lag
    return figures


def _table(figures: dict[str, Any], state: str) -> Table:
    table = Table(title=f"reconciler: {state}", show_header=False, box=None, pad_edge=False)
    for name, value in figures.items():
        shown = "-" if value is None else str(value)
        if isinstance(value, dict):
            shown = ", ".join(f"{kind} {count}" for kind, count in sorted(value.items())) or "0"
        table.add_row(name.replace("_", " "), shown)
    return table
