"""The fruit store's Tornado application: routes and settings."""

from __future__ import annotations

from dataclasses import dataclass, field

import tornado.web

import tor_async_couchdb as tac
from tor_async_couchdb.tornado import (
    HealthHandler,
    InFlight,
    MetricsHandler,
    ServiceMetrics,
    access_log,
)

from .actions import FruitStore
from .handlers import ERRORS, EatenHandler, FruitsHandler, NotFoundHandler, OneFruitHandler
from .merging import leaf_hooks

_ID = r"([^/]+)"  # any segment: the action refuses what is not a fruit id, with a 400


@dataclass(frozen=True, slots=True)
class Limits:
    """The service's own bounds: request deadline, body size, and the health check's time."""

    # A bound on every request, well above the embedded server's slow view re-indexing under
    # write load (seconds at times), and below what an HTTP client would wait.
    request_timeout: float = 10.0
    max_body: int = 16 * 1024
    health_timeout: float = 2.0


@dataclass(slots=True)
class Service:
    """Everything one running fruit store holds: its client, store, metrics and app."""

    couch: tac.CouchDB
    store: FruitStore
    metrics: ServiceMetrics
    app: tornado.web.Application
    in_flight: InFlight = field(default_factory=InFlight)


def make_service(
    couch: tac.CouchDB,
    db_name: str,
    metrics: ServiceMetrics,
    *,
    protection: tac.Protection,
    clock: tac.HybridClock,
    limits: Limits | None = None,
) -> Service:
    """Build the service over ``couch``, a client made with ``protection``'s codecs (and
    ``on_request=metrics.record_couch_request`` for CouchDB latencies); ``clock`` stamps this
    instance's writes. Does no I/O: install the database first (``install.install``)."""
    limits = limits or Limits()
    db = couch.database(db_name)
    store = FruitStore(
        db,
        clock=clock,
        hooks=leaf_hooks(db, protection.signature),
        on_conflicts_retried=lambda n: metrics.count("conflicts_retried", n),
        on_merged=lambda: metrics.count("conflicts_merged_before_write"),
    )
    in_flight = InFlight()
    fruit_args = {"store": store}
    app = tornado.web.Application(
        [
            (r"/v1\.0/fruits", FruitsHandler, fruit_args),
            (rf"/v1\.0/fruits/{_ID}", OneFruitHandler, fruit_args),
            (rf"/v1\.0/fruits/{_ID}/eaten", EatenHandler, fruit_args),
            (
                r"/_health",
                HealthHandler,
                {"couch": couch, "databases": [db], "timeout": limits.health_timeout},
            ),
            (r"/_metrics", MetricsHandler, {"metrics": metrics, "couch": couch, "databases": [db]}),
        ],
        default_handler_class=NotFoundHandler,
        log_function=access_log(metrics),
        tac_errors=ERRORS,
        tac_request_timeout=limits.request_timeout,
        tac_max_body=limits.max_body,
        tac_in_flight=in_flight,
        compress_response=False,
    )
    return Service(couch=couch, store=store, metrics=metrics, app=app, in_flight=in_flight)
