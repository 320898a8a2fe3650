"""Run the fruit store: ``python -m samples.fruit_store [--couchdb-url URL] [--port N]``.

Without ``--couchdb-url`` (or ``COUCHDB_URL``, with credentials) it starts the embedded
CouchDB-compatible server for the run. It loads or generates the key ring, installs the
database with the library's installer (views, ``_security``, the signature guard), serves
until SIGINT or SIGTERM, lets requests in flight finish, closes the client and stops what it
started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import tor_async_couchdb as tac
from tor_async_couchdb.devserver import DevServer
from tor_async_couchdb.tornado import ServiceMetrics, serve_until_signalled

from . import keys, logs
from .app import Limits, Service, make_service
from .install import install
from .models import Fruit

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
        help="where this run's key ring is kept (keys/keyring.json under it)",
    )
    parser.add_argument(
        "--keyring",
        type=Path,
        default=None,
        help="the key ring file (default: STATE_DIR/keys/keyring.json; "
        "$TOR_ASYNC_COUCHDB_KEYRING wins)",
    )
    parser.add_argument(
        "--node-id",
        default="fruit-store-1",
        help="this instance's id in merge metadata: unique among instances writing at once",
    )
    parser.add_argument(
        "--reconcile",
        action="store_true",
        help="run the reconciler in-process (merges replication conflicts)",
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


def announce(url: str, couch_url: str, keys_at: str) -> None:
    """What a user needs to start: the URL, where keys will be, and requests that work."""
    post = (
        f"curl -s -X POST -H 'Content-Type: application/json' -d '{{\"color\": \"red\"}}' "
        f"{url}/v1.0/fruits"
    )
    lines = [
        f"fruit store listening on {url}",
        f"couchdb: {couch_url}",
        f"keys: {keys_at}",
        "try:",
        f"  {post}",
        f"  curl -s '{url}/v1.0/fruits?color=red&limit=5'",
        f"  curl -s {url}/_health",
        f"  curl -s '{url}/_metrics?format=json'",
        "Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)


async def serve(
    url: str, auth: tuple[str, str] | None, args: argparse.Namespace, *, fresh: bool
) -> None:
    """Serve until signalled. ``fresh``: the database was made for this run (new keys)."""
    keyring_at = args.keyring or keys.keyring_path(args.state_dir)
    ring, keys_at = keys.load_or_generate(keyring_at, fresh=fresh)
    protection = tac.Protection.from_keyring(ring)
    metrics = ServiceMetrics()
    couch = tac.CouchDB(
        url,
        auth=auth,
        timeouts=tac.Timeouts(connect=2.0, read=10.0, pool=5.0),
        limits=tac.Limits(max_connections=args.max_connections),
        # Few quick retries: the request deadline (Limits.request_timeout) bounds them anyway.
        retry=tac.RetryPolicy(max_retries=2, backoff=0.05, max_backoff=0.5),
        on_request=metrics.record_couch_request,
        codecs=keys.codecs(protection),
    )
    async with couch:
        counts = await install(couch, args.db, protection)
        logger.info("installed %s: %s", args.db, counts)
        clock = tac.HybridClock(args.node_id)
        service = make_service(
            couch, args.db, metrics, protection=protection, clock=clock, limits=Limits()
        )

        def ready(port: int) -> None:
            announce(f"http://{args.host}:{port}", couch.url, keys_at)

        async with reconciling(service, enabled=args.reconcile):
            # Only the serving is profiled: not the embedded server's start, nor the install.
            with profiled(args.profile):
                await serve_until_signalled(
                    service.app, port=args.port, address=args.host, grace=args.grace, ready=ready
                )
    logger.info("stopped: requests finished, client closed")


@contextlib.asynccontextmanager
async def reconciling(service: Service, *, enabled: bool) -> AsyncIterator[tac.Reconciler | None]:
    """Run a reconciler of the service's database for the block (if ``enabled``)."""
    if not enabled:
        yield None
        return
    db = service.store.db
    reconciler = tac.Reconciler(
        db, Fruit, checkpoint=tac.LocalDocCheckpoint(db), hooks=service.store.hooks, settle=0.2
    )
    task = asyncio.create_task(reconciler.run())
    try:
        yield reconciler
    finally:
        reconciler.stop()
        await asyncio.wait_for(task, 15)
        logger.info("reconciler stopped: %s", reconciler.metrics)


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
        asyncio.run(serve(args.couchdb_url, None, args, fresh=False))
        return 0
    # Started from the main thread, so the kernel ends it should this process be killed.
    # Its data lives only as long as the run: so do the keys generated for it.
    with DevServer(in_memory=args.in_memory) as server:
        asyncio.run(serve(server.url, server.auth, args, fresh=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
