"""The ``tor-async-couchdb`` console script: a thin layer over :mod:`tor_async_couchdb.ops`."""

from __future__ import annotations

from collections.abc import Sequence

import click

import tor_async_couchdb as tac

from ._common import log_level_option
from ._devserver import devserver
from ._install import delete_database, install, status
from ._reconcile import reconcile
from ._replicate import replicate, replication_status
from ._rotate import rotate
from ._watch import compact, health, metrics

__all__ = ["cli", "main"]

_EPILOG = """\b
Credentials: --url may hold USER:PASSWORD@, or give --user and --password, or
--credentials-file FILE (first line USER:PASSWORD), or the environment: COUCHDB_URL,
COUCHDB_USER, COUCHDB_PASSWORD. They are never printed or logged.

\b
Exit codes: 0 success (healthy); 1 the operation failed or the database is unhealthy;
2 the command line is wrong (usage error).
"""


@click.group(epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(tac.__version__, prog_name="tor-async-couchdb")
@log_level_option
def cli() -> None:
    """Install, upgrade, check and operate the CouchDB databases of services built on
    tor_async_couchdb. Run a command with --help for its options."""


for _command in (
    install,
    status,
    delete_database,
    health,
    metrics,
    compact,
    replicate,
    replication_status,
    rotate,
    reconcile,
    devserver,
):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line (the console script's entry point); exits with the status."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="tor-async-couchdb")
