"""``replicate`` and ``replication-status``."""

from __future__ import annotations

import click
from rich.table import Table

from .. import ops
from ._common import (
    EXIT_FAILED,
    Connection,
    connection_options,
    database_argument,
    json_option,
    log_level_option,
    out_console,
    print_json,
    run,
)

__all__ = ["replicate", "replication_status"]


@click.command(short_help="Set up continuous two-way replication.")
@database_argument
@click.option(
    "--remote-db", default=None, help="Database on the remote server (default: DATABASE)."
)
@click.option(
    "--name",
    default=None,
    help="Stem of the two _replicator document ids (default: made from both ends).",
)
@connection_options()
@connection_options("remote-")
@json_option
@log_level_option
def replicate(
    *,
    database: str,
    connection: Connection,
    remote: Connection,
    remote_db: str | None,
    name: str | None,
    as_json: bool,
) -> None:
    """Set up continuous two-way replication between DATABASE on this server and the same (or
    --remote-db) database on the remote server: two _replicator documents on this server,
    NAME-push and NAME-pull. Running it again changes nothing; changed ends update them.

    The servers replicate with the credentials given here, which are stored in the documents
    as an Authorization header, never in a URL, and never printed.
    """
    run(
        _replicate(
            database=database,
            connection=connection,
            remote=remote,
            remote_db=remote_db or database,
            name=name,
            as_json=as_json,
        )
    )


def _endpoint(connection: Connection, database: str) -> ops.Endpoint:
    return ops.Endpoint(connection.url, database, connection.user, connection.password)


async def _replicate(
    *,
    database: str,
    connection: Connection,
    remote: Connection,
    remote_db: str,
    name: str | None,
    as_json: bool,
) -> int:
    local_end, remote_end = _endpoint(connection, database), _endpoint(remote, remote_db)
    async with connection.client() as couch:
        couch.database(database)  # the names are checked before any request
        couch.database(remote_db)
        docs = await ops.setup_replication(couch, local_end, remote_end, name=name)
    if as_json:
        print_json(
            [{"id": d.id, "source": d.source, "target": d.target, "action": d.action} for d in docs]
        )
        return 0
    for doc in docs:
        out_console().print(f"{doc.action:<9} {doc.id}: {doc.source} -> {doc.target}", markup=False)
    return 0


@click.command("replication-status", short_help="Show each replication's state, lag and errors.")
@click.option("--prefix", default="", help="Show only replications whose id starts with this.")
@connection_options()
@json_option
@log_level_option
def replication_status(connection: Connection, prefix: str, as_json: bool) -> None:
    """Show each replication of this server's _replicator database: its state, lag (changes
    not yet replicated) and error. Exit code 1 if one of them is failing."""
    run(_status(connection, prefix, as_json))


def _text(value: object) -> str:
    return "not reported" if value is None else str(value)


async def _status(connection: Connection, prefix: str, as_json: bool) -> int:
    async with connection.client() as couch:
        states = await ops.replication_status(couch, prefix=prefix)
    failing = any(state.failed for state in states)
    if as_json:
        print_json([state.as_dict() for state in states])
        return EXIT_FAILED if failing else 0
    table = Table(
        "id", "source -> target", "state", "lag", "written", "error", box=None, pad_edge=False
    )
    for state in states:
        table.add_row(
            state.id,
            f"{state.source} -> {state.target}",
            state.state,
            _text(state.pending),
            _text(state.docs_written),
            state.error or "",
        )
    console = out_console()
    console.print(table if states else "no replications")
    return EXIT_FAILED if failing else 0
