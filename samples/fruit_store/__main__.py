"""Run the fruit store: ``python -m samples.fruit_store [--couchdb-url URL] [--port N]``.

Without ``--couchdb-url`` (or ``COUCHDB_URL``, with credentials) it starts the embedded
CouchDB-compatible server for the run. It creates the database and views, serves until SIGINT or
SIGTERM, lets requests in flight finish, closes the client and stops what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import tor_async_couchdb as tac
from tor_async_couchdb.devserver import DevServer
from tor_async_couchdb.tornado import ServiceMetrics, serve_until_signalled

from . import logs
from .app import Limits, make_service

logger = logging.getLogger("samples.fruit_store")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m samples.fruit_store", description=__doc__)
    parser.add_argument(
        "--couchdb-url",
        default=os.environ.get("COUCHDB_URL"),
        help="CouchDB URL with credentials (default: $COUCHDB_URL, else embedded)",
    )
    parser.add_argument("--db", default="fruit_store", help="database name")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888, help="0 picks a free port")
    parser.add_argument("--in-memory", action="store_true", help="embedded server in memory")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".run/fruit_store"),
        help="where this run's keys will be kept (data protection)",
    )
    parser.add_argument(
        "--grace", type=float, default=10.0, help="seconds for requests in flight at shutdown"
    )
    parser.add_argument(
        "--max-connections", type=int, default=20, help="CouchDB connections of the client's pool"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="profile the service (pyinstrument) and write the session here",
    )
    return parser.parse_args(argv)  # fmt: skip


def announce(url: str, couch_url: str, state_dir: Path) -> None:
    """What a user needs to start: the URL, where keys will be, and requests that work."""
    post = (
        f"curl -s -X POST -H 'Content-Type: application/json' -d '{{\"color\": \"red\"}}' "
        f"{url}/v1.0/fruits"
    )
    lines = [
        f"fruit store listening on {url}",
        f"couchdb: {couch_url}",
        f"keys: {state_dir.resolve() / 'keys'} (used once data protection lands; none yet)",
        "try:",
        f"  {post}",
        f"  curl -s '{url}/v1.0/fruits?color=red&limit=5'",
        f"  curl -s {url}/_health",
        f"  curl -s '{url}/_metrics?format=json'",
        "Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)


async def serve(url: str, auth: tuple[str, str] | None, args: argparse.Namespace) -> None:
    metrics = ServiceMetrics()
    couch = tac.CouchDB(
        url,
        auth=auth,
        timeouts=tac.Timeouts(connect=2.0, read=10.0, pool=5.0),
        limits=tac.Limits(max_connections=args.max_connections),
        # Few quick retries: the request deadline (Limits.request_timeout) bounds them anyway.
        retry=tac.RetryPolicy(max_retries=2, backoff=0.05, max_backoff=0.5),
        on_request=metrics.record_couch_request,
    )
    async with couch:
        service = make_service(couch, args.db, metrics, limits=Limits())
        await service.store.install()

        def ready(port: int) -> None:
            announce(f"http://{args.host}:{port}", couch.url, args.state_dir)

        # Only the serving is profiled: not the embedded server's start, nor the install.
        with profiled(args.profile):
            await serve_until_signalled(
                service.app, port=args.port, address=args.host, grace=args.grace, ready=ready
            )
    logger.info("stopped: requests finished, client closed")


@contextlib.contextmanager
def profiled(target: Path | None) -> Iterator[None]:
    """Profile the block with pyinstrument (a sampling profiler: little overhead) if asked."""
    if target is None:
        yield
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        target.write_text(profiler.output_text(unicode=False, show_all=False))
        session = profiler.last_session
        if session is not None:  # kept for bench/sample_load.py, which reads it back
            session.save(str(target.with_suffix(".pyisession")))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure()
    if args.couchdb_url:
        asyncio.run(serve(args.couchdb_url, None, args))
        return 0
    # Started from the main thread, so the kernel ends it should this process be killed.
    with DevServer(in_memory=args.in_memory) as server:
        asyncio.run(serve(server.url, server.auth, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
