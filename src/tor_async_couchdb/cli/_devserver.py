"""``devserver``: the embedded CouchDB-compatible server, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import threading

import click

from ..devserver import DevServer, DevServerError, install_server
from ._common import EXIT_FAILED, err_console, log_level_option

__all__ = ["devserver"]


@click.group(
    invoke_without_command=True,
    short_help="Run the embedded CouchDB-compatible server until Ctrl-C.",
)
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Port (default: a free one)."
)
@click.option("--password", default=None, help="Admin password (default: random).")
@click.option("--in-memory", is_flag=True, help="Keep databases in memory.")
@log_level_option
@click.pass_context
def devserver(ctx: click.Context, port: int | None, password: str | None, in_memory: bool) -> None:
    """Run the embedded CouchDB-compatible server (pouchdb-server) in a temporary directory on
    127.0.0.1 and print its URL and admin credentials. Its files are deleted when it stops.
    The first run installs it (see the install command) if it is not installed yet."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        code = _serve(DevServer(in_memory=in_memory, port=port, password=password))
    except DevServerError as error:
        err_console().print(f"error: {error}", markup=False)
        raise SystemExit(EXIT_FAILED) from None
    if code:
        raise SystemExit(code)


@devserver.command(short_help="Install the embedded server once, for this user.")
@log_level_option
def install() -> None:
    """Install pouchdb-server (npm ci from the lock file shipped with the package, then its
    crash fixes) into the per-user cache ($XDG_CACHE_HOME/tor-async-couchdb, or where
    TAC_DEVSERVER_DIR says), and print where. Needs Node.js 18+ and npm; does nothing if it
    is installed already."""
    try:
        where = install_server(progress=lambda line: err_console().print(line, markup=False))
    except DevServerError as error:
        err_console().print(f"error: {error}", markup=False)
        raise SystemExit(EXIT_FAILED) from None
    click.echo(f"the embedded server is installed in {where}")


def _serve(server: DevServer) -> int:
    stop = threading.Event()
    # SIGTERM (as from a service manager) stops as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with server:
        # Printed on purpose: this is a throw-away development server's own admin.
        click.echo(f"embedded CouchDB-compatible server running at {server.url}")
        click.echo(f"  admin user:     {server.user}")
        click.echo(f"  admin password: {server.password}")
        click.echo(f"  COUCHDB_URL={server.url_with_credentials}")
        click.echo("press Ctrl-C to stop (its files are deleted on exit)")
        try:
            while not stop.wait(0.5):
                if not server.running:
                    err_console().print("the server process exited")
                    return EXIT_FAILED
        except KeyboardInterrupt:
            pass
    return 0
