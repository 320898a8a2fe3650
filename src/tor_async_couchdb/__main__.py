"""The ``tor-async-couchdb`` command line (also ``python -m tor_async_couchdb``)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from .devserver import DevServer, DevServerError

__all__ = ["main"]


def _devserver(args: argparse.Namespace) -> int:
    server = DevServer(in_memory=args.in_memory, port=args.port, password=args.password)
    stop = threading.Event()
    # SIGTERM (as from a service manager) stops as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with server:
        print(f"embedded CouchDB-compatible server running at {server.url}", flush=True)
        print(f"  admin user:     {server.user}", flush=True)
        print(f"  admin password: {server.password}", flush=True)
        print(f"  COUCHDB_URL={server.url_with_credentials}", flush=True)
        print("press Ctrl-C to stop (its files are deleted on exit)", flush=True)
        try:
            while not stop.wait(0.5):
                if not server.running:
                    print("the server process exited", file=sys.stderr)
                    return 1
        except KeyboardInterrupt:
            pass
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tor-async-couchdb", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dev = commands.add_parser(
        "devserver",
        help="run the embedded CouchDB-compatible server until Ctrl-C",
        description="Run the embedded CouchDB-compatible server (pouchdb-server) in a "
        "temporary directory on 127.0.0.1 and print its URL and admin credentials.",
    )
    dev.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    dev.add_argument("--password", default=None, help="admin password (default: random)")
    dev.add_argument("--in-memory", action="store_true", help="keep databases in memory")
    dev.set_defaults(run=_devserver)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except DevServerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
