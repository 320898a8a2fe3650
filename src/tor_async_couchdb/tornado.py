"""Helpers for Tornado services that keep their data in CouchDB through this library.

What every service would otherwise copy from the sample, in four parts:

- **errors**: :class:`ErrorMap` turns the library's exceptions (and :class:`HTTPProblem`, the
  service's own) into an HTTP status and a JSON body ``{"error": ..., "reason": ..., "fields":
  [...]}``; :class:`CouchRequestHandler` uses it in ``write_error``, parses JSON bodies strictly
  and runs actions under a deadline, so a CouchDB that is down answers 503, never a hang.
- **revisions**: a document's ``_rev`` is a strong ETag (:func:`etag_for`); :func:`if_match`
  reads ``If-Match`` and :meth:`IfMatch.check` raises 412 on a mismatch.
- **metrics**: :class:`ServiceMetrics` counts requests and their latencies per route, and
  CouchDB's per method (pass :meth:`ServiceMetrics.record_couch_request` as the client's
  ``on_request`` hook); it renders Prometheus text or JSON.
- **handlers** to mount: :class:`HealthHandler` (200 with details, 503 when CouchDB cannot be
  reached within a time limit) and :class:`MetricsHandler` (``?format=json`` for JSON).

A service of a few lines::

    couch = tac.CouchDB(url, auth=auth, on_request=metrics.record_couch_request)
    app = tornado.web.Application(
        [
            (r"/_health", HealthHandler, {"couch": couch, "databases": [db]}),
            (r"/_metrics", MetricsHandler, {"metrics": metrics, "couch": couch}),
            (r"/v1.0/fruits/(.*)", FruitHandler),  # a CouchRequestHandler
        ],
        log_function=access_log(metrics),
    )

Tornado is an optional dependency: ``pip install 'tor-async-couchdb[tornado]'``.
"""

from __future__ import annotations

try:
    import tornado.httpserver
    import tornado.netutil
    import tornado.web
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "tor_async_couchdb.tornado needs Tornado 6.4 or newer, which is an optional dependency: "
        "pip install 'tor-async-couchdb[tornado]'"
    ) from exc

import asyncio
import bisect
import contextlib
import json
import logging
import math
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

from ._exceptions import (
    ClientClosedError,
    Conflict,
    CouchError,
    Forbidden,
    HTTPStatusError,
    InvalidInputError,
    MalformedEnvelope,
    ModelValidationError,
    NotFound,
    PreconditionFailed,
    ProtectionError,
    ReadTimeout,
    ServerError,
    TamperedDocument,
    TooManyRequests,
    TransportError,
    TransportTimeout,
    Unauthorized,
    WrongTypeError,
)
from ._merge import BadLeafError, UnsealedChangeError

__all__ = [
    "CouchRequestHandler",
    "DEFAULT_BUCKETS",
    "ErrorMap",
    "ErrorRule",
    "HTTPProblem",
    "HealthHandler",
    "Histogram",
    "IfMatch",
    "InFlight",
    "MetricsHandler",
    "Problem",
    "ServiceMetrics",
    "access_log",
    "etag_for",
    "if_match",
    "serve_until_signalled",
]

_T = TypeVar("_T")
logger = logging.getLogger("tor_async_couchdb.tornado")


class _Stats(Protocol):
    """What the metrics show of a ``tac.ClientStats`` (read-only, as its fields are)."""

    @property
    def requests(self) -> int: ...
    @property
    def errors_by_status(self) -> Mapping[int, int]: ...
    @property
    def transport_errors(self) -> int: ...
    @property
    def retries(self) -> int: ...
    @property
    def bytes_sent(self) -> int: ...
    @property
    def bytes_received(self) -> int: ...


class _Timed(Protocol):
    """What the metrics take from a ``tac.RequestRecord``."""

    @property
    def method(self) -> str: ...
    @property
    def duration(self) -> float: ...


class _Server(Protocol):
    """What the handlers need of a ``tac.CouchDB`` (a protocol: fakes work in tests)."""

    async def info(self) -> dict[str, Any]: ...

    def stats(self) -> _Stats: ...


class _Database(Protocol):
    """What the handlers need of a ``tac.Database``."""

    name: str

    async def info(self) -> dict[str, Any]: ...


# -- errors ----------------------------------------------------------------------------------


class HTTPProblem(tornado.web.HTTPError):
    """An HTTP error a handler raises on purpose: ``status``, a short machine-readable
    ``error`` code, a human ``reason`` and, for bad input, the ``fields`` concerned."""

    def __init__(self, status: int, error: str, reason: str, *, fields: Sequence[str] = ()) -> None:
        super().__init__(status, reason=None)
        self.error = error
        self.problem_reason = reason
        self.fields = tuple(fields)


@dataclass(frozen=True, slots=True)
class Problem:
    """An error as the HTTP client sees it: status, JSON body and extra headers."""

    status: int
    error: str
    reason: str
    fields: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        body: dict[str, Any] = {"error": self.error, "reason": self.reason}
        if self.fields:
            body["fields"] = list(self.fields)
        return body


@dataclass(frozen=True, slots=True)
class ErrorRule:
    """Exceptions of type ``kind`` answer ``status`` with error code ``error``.

    ``reason`` is the text shown to the HTTP client; ``None`` shows the exception's own
    message (only for errors whose message says nothing about the server's internals).
    """

    kind: type[BaseException]
    status: int
    error: str
    reason: str | None = None


# First match wins, so subclasses come before their bases. Status errors CouchDB sent to
# *this service* are not the HTTP client's fault: only the ones that say something about the
# client's request (missing document, stale revision) keep their meaning.
_DEFAULT_RULES: tuple[ErrorRule, ...] = (
    ErrorRule(NotFound, 404, "not_found", "no such resource"),
    ErrorRule(WrongTypeError, 404, "not_found", "no such resource"),
    ErrorRule(Conflict, 409, "conflict", "the resource was changed by someone else"),
    ErrorRule(PreconditionFailed, 412, "precondition_failed", "the revision is not current"),
    ErrorRule(ModelValidationError, 400, "invalid", None),
    # A stored document that fails its signature or its ciphertexts was changed behind the
    # service's back: a server-side failure, never the HTTP client's. The reason says no more
    # (which field or key failed is for the log, where log_exception writes it).
    ErrorRule(TamperedDocument, 500, "tampered", "the stored resource failed its integrity check"),
    ErrorRule(MalformedEnvelope, 500, "tampered", "the stored resource failed its integrity check"),
    ErrorRule(ProtectionError, 500, "protection_failed", "the service cannot read its data"),
    # Both are InvalidInputErrors of the service's own making, never the HTTP client's: a
    # conflicted document whose leaves cannot be merged (stored data), and a mergeable model
    # written without sealing (a bug).
    ErrorRule(BadLeafError, 500, "unmergeable", "the stored versions cannot be merged"),
    ErrorRule(UnsealedChangeError, 500, "internal_error", "the service failed"),
    ErrorRule(InvalidInputError, 400, "bad_request", None),
    ErrorRule(TooManyRequests, 503, "database_busy", "the database is overloaded"),
    ErrorRule(Unauthorized, 500, "database_refused", "the service may not use its database"),
    ErrorRule(Forbidden, 500, "database_refused", "the service may not use its database"),
    ErrorRule(ServerError, 502, "database_error", "the database failed"),
    ErrorRule(ReadTimeout, 504, "database_timeout", "the database did not answer in time"),
    ErrorRule(TransportTimeout, 503, "database_unavailable", "the database cannot be reached"),
    ErrorRule(TransportError, 503, "database_unavailable", "the database cannot be reached"),
    ErrorRule(ClientClosedError, 503, "shutting_down", "the service is shutting down"),
    ErrorRule(HTTPStatusError, 500, "database_error", "the database refused the request"),
    # A deadline of the service's own (CouchRequestHandler.deadline) ran out.
    ErrorRule(TimeoutError, 504, "timeout", "the request took too long"),
)


@dataclass(frozen=True, slots=True)
class ErrorMap:
    """Maps exceptions to :class:`Problem`\\ s by the first :class:`ErrorRule` that fits.

    ``ErrorMap().with_rules(ErrorRule(MyError, 422, "mine"))`` puts a service's own rules
    first. Anything without a rule is a 500 ``internal_error`` that shows no details.
    """

    rules: tuple[ErrorRule, ...] = _DEFAULT_RULES

    def with_rules(self, *rules: ErrorRule) -> ErrorMap:
        """A map trying ``rules`` before these."""
        return ErrorMap(rules=(*rules, *self.rules))

    def problem_for(self, error: BaseException) -> Problem:
        """The HTTP answer to ``error``."""
        if isinstance(error, HTTPProblem):
            return Problem(error.status_code, error.error, error.problem_reason, error.fields)
        if isinstance(error, tornado.web.HTTPError):
            return _tornado_problem(error)
        for rule in self.rules:
            if isinstance(error, rule.kind):
                return _apply(rule, error)
        return Problem(500, "internal_error", "the service failed")


def _apply(rule: ErrorRule, error: BaseException) -> Problem:
    fields: tuple[str, ...] = ()
    if isinstance(error, ModelValidationError):
        fields = error.fields
        reason = "; ".join(f"{path}: {message}" for path, message in error.errors)
    else:
        reason = rule.reason if rule.reason is not None else _message(error)
    headers: dict[str, str] = {}
    if isinstance(error, TooManyRequests) and error.retry_after is not None:
        headers["Retry-After"] = str(math.ceil(error.retry_after))
    return Problem(rule.status, rule.error, reason or rule.error, fields, headers)


def _message(error: BaseException) -> str:
    # CouchError.message leaves out the method and URL that str() appends: the HTTP client
    # has no business knowing where the database is.
    return error.message if isinstance(error, CouchError) else str(error)


def _tornado_problem(error: tornado.web.HTTPError) -> Problem:
    # Raised by Tornado itself: 405 for an unsupported method, 400 for missing arguments...
    reason = error.reason or error.log_message or "request failed"
    code = reason.lower().replace(" ", "_")
    return Problem(error.status_code, code, reason)


# -- revisions as ETags ----------------------------------------------------------------------


def etag_for(rev: str) -> str:
    """The strong ETag of a document revision: the rev in quotes, as CouchDB 3 sends it."""
    return f'"{rev}"'


@dataclass(frozen=True, slots=True)
class IfMatch:
    """A request's ``If-Match`` header: the revisions it names, or ``*`` (any current one).

    Weak tags never match: ``If-Match`` compares strongly (RFC 9110, 13.1.1).
    """

    revs: tuple[str, ...] = ()
    wildcard: bool = False

    def matches(self, rev: str | None) -> bool:
        """Whether the current revision ``rev`` (``None``: no document) satisfies the header."""
        if rev is None:
            return False
        return self.wildcard or rev in self.revs

    def check(self, rev: str | None) -> None:
        """Raise :class:`HTTPProblem` 412 unless :meth:`matches` ``rev``."""
        if not self.matches(rev):
            raise HTTPProblem(
                412, "precondition_failed", "If-Match does not name the current revision"
            )


def if_match(handler: tornado.web.RequestHandler) -> IfMatch | None:
    """The request's ``If-Match``, or ``None`` when it sent none."""
    header = handler.request.headers.get("If-Match")
    if header is None:
        return None
    tags = [tag.strip() for tag in header.split(",") if tag.strip()]
    if tags == ["*"]:
        return IfMatch(wildcard=True)
    strong = tuple(tag[1:-1] for tag in tags if len(tag) >= 2 and tag[0] == tag[-1] == '"')
    return IfMatch(revs=strong)


# -- handlers --------------------------------------------------------------------------------


class CouchRequestHandler(tornado.web.RequestHandler):
    """A JSON request handler: errors as JSON through an :class:`ErrorMap`, strict JSON
    bodies, and a deadline for the work of one request.

    Application settings: ``tac_errors`` (an :class:`ErrorMap`), ``tac_request_timeout``
    (seconds, 10 by default) and ``tac_max_body`` (bytes, 64 KiB by default).
    """

    default_request_timeout: ClassVar[float] = 10.0
    default_max_body: ClassVar[int] = 64 * 1024

    @property
    def error_map(self) -> ErrorMap:
        """The application's :class:`ErrorMap` (setting ``tac_errors``)."""
        errors = self.settings.get("tac_errors")
        return errors if isinstance(errors, ErrorMap) else ErrorMap()

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object.

        Raises :class:`HTTPProblem`: 415 unless the content type is ``application/json``, 413
        for a body above ``tac_max_body``, 400 for malformed JSON or anything but an object.
        """
        kind = self.request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if kind != "application/json":
            raise HTTPProblem(415, "unsupported_media_type", "send Content-Type: application/json")
        limit = int(self.settings.get("tac_max_body", self.default_max_body))
        if len(self.request.body) > limit:
            raise HTTPProblem(413, "too_large", f"the body is larger than {limit} bytes")
        try:
            body = json.loads(self.request.body)
        except (ValueError, UnicodeDecodeError) as error:
            raise HTTPProblem(400, "malformed_json", f"the body is not JSON: {error}") from None
        if not isinstance(body, dict):
            raise HTTPProblem(400, "malformed_json", "the body must be a JSON object")
        return body

    async def deadline(self, work: Awaitable[_T]) -> _T:
        """Await ``work``, cancelling it after ``tac_request_timeout`` seconds (a 504).

        Every network wait of the client has its own time limit, but retries add up: this
        bounds what the HTTP client waits for, whatever the database does.
        """
        limit = float(self.settings.get("tac_request_timeout", self.default_request_timeout))
        return await asyncio.wait_for(work, limit)

    def prepare(self) -> None:
        """Count the request as in flight (setting ``tac_in_flight``, an :class:`InFlight`)."""
        in_flight = self.settings.get("tac_in_flight")
        if isinstance(in_flight, InFlight):
            in_flight.enter()
            self._tac_in_flight: InFlight | None = in_flight

    def on_finish(self) -> None:
        """The request is answered: no longer in flight."""
        in_flight = getattr(self, "_tac_in_flight", None)
        if in_flight is not None:
            self._tac_in_flight = None
            in_flight.leave()

    def write_json(self, body: Any, *, status: int = 200) -> None:
        """Answer ``body`` as JSON with ``status``; a GET whose ETag (set before, e.g. by
        :func:`etag_for`) matches ``If-None-Match`` answers 304 without a body."""
        self.set_status(status)
        fresh = status == 200 and self.request.method in ("GET", "HEAD")
        if fresh and "Etag" in self._headers and self.check_etag_header():
            # Tornado checks If-None-Match only for ETags it computes itself.
            self.set_status(304)
            self.finish()
            return
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body, separators=(",", ":")))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Answer errors as JSON: the :class:`ErrorMap`'s problem for the exception."""
        exc_info = kwargs.get("exc_info")
        error = exc_info[1] if exc_info else None
        if error is None:
            problem = Problem(status_code, "error", self._reason)
        else:
            problem = self.error_map.problem_for(error)
        self.set_status(problem.status)
        for name, value in problem.headers.items():
            self.set_header(name, value)
        self.clear_header("Etag")
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(problem.body(), separators=(",", ":")))

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        """Log unexpected failures with their traceback; expected outcomes (bad input, a
        missing document, a database that is down) in one line, without."""
        if value is None or not _expected(value):
            super().log_exception(typ, value, tb)
            return
        problem = self.error_map.problem_for(value)
        level = logging.WARNING if problem.status >= 500 else logging.INFO
        logger.log(
            level,
            "%s %s -> %d %s: %s",
            self.request.method,
            self.request.path,
            problem.status,
            problem.error,
            value,
        )


def _expected(error: BaseException) -> bool:
    return isinstance(error, tornado.web.HTTPError | CouchError | TimeoutError)


class HealthHandler(CouchRequestHandler):
    """``GET``: 200 with the server's version, the latency of reaching it and the databases'
    document counts; 503 when any of them cannot be read within ``timeout`` seconds.

    Mount with ``{"couch": couch, "databases": [db, ...], "timeout": 2.0}``.
    """

    metrics_route = "/_health"

    def initialize(
        self, couch: _Server, databases: Sequence[_Database] = (), timeout: float = 2.0
    ) -> None:
        self.couch = couch
        self.databases = tuple(databases)
        self.timeout = timeout

    async def get(self) -> None:
        started = time.perf_counter()
        try:
            details = await asyncio.wait_for(self._details(), self.timeout)
        except (CouchError, TimeoutError) as error:
            self.write_json(
                {"status": "unavailable", "reason": self._why_unavailable(error)}, status=503
            )
            return
        details["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
        self.write_json({"status": "ok", **details})

    async def _details(self) -> dict[str, Any]:
        info = await self.couch.info()
        databases = {}
        for db in self.databases:
            db_info = await db.info()
            databases[db.name] = {"doc_count": db_info.get("doc_count")}
        return {"couchdb": {"version": info.get("version")}, "databases": databases}

    def _why_unavailable(self, error: BaseException) -> str:
        if isinstance(error, TimeoutError) and not isinstance(error, CouchError):
            return f"no answer within {self.timeout} s"  # our own limit, not the client's
        return self.error_map.problem_for(error).reason


class MetricsHandler(CouchRequestHandler):
    """``GET``: the :class:`ServiceMetrics` in Prometheus text format, or JSON with
    ``?format=json``; with ``couch``, the client's counters (``stats()``) too.

    Mount with ``{"metrics": metrics, "couch": couch, "databases": [db, ...]}``; database
    document counts are read within ``timeout`` seconds, or left out.
    """

    metrics_route = "/_metrics"

    def initialize(
        self,
        metrics: ServiceMetrics,
        couch: _Server | None = None,
        databases: Sequence[_Database] = (),
        timeout: float = 1.0,
    ) -> None:
        self.metrics = metrics
        self.couch = couch
        self.databases = tuple(databases)
        self.timeout = timeout

    async def get(self) -> None:
        gauges = await self._database_gauges()
        stats = self.couch.stats() if self.couch is not None else None
        if self.get_query_argument("format", "text") == "json":
            self.write_json(self.metrics.as_json(client_stats=stats, gauges=gauges))
            return
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.finish(self.metrics.as_prometheus(client_stats=stats, gauges=gauges))

    async def _database_gauges(self) -> dict[str, dict[str, float]]:
        gauges: dict[str, dict[str, float]] = {}
        for db in self.databases:
            try:
                info = await asyncio.wait_for(db.info(), self.timeout)
            except (CouchError, TimeoutError):
                continue  # a scrape must not fail because the database is slow
            for key in ("doc_count", "doc_del_count"):
                if isinstance(info.get(key), int | float):
                    gauges.setdefault(f"couchdb_database_{key}", {})[db.name] = info[key]
        return gauges


# -- metrics ---------------------------------------------------------------------------------

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


@dataclass(slots=True)
class Histogram:
    """Observations counted into cumulative-upper-bound buckets, as Prometheus has them."""

    bounds: tuple[float, ...] = DEFAULT_BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf

    def observe(self, value: float) -> None:
        """Count one observation of ``value`` (seconds)."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs, ending with ``+Inf``."""
        labels = [_number(bound) for bound in self.bounds] + ["+Inf"]
        running, pairs = 0, []
        for label, count in zip(labels, self.counts, strict=True):
            running += count
            pairs.append((label, running))
        return pairs


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else f"{int(value)}.0"


class ServiceMetrics:
    """Request counts and latencies per route, CouchDB request latencies per method, and
    named counters a service adds (``count("conflicts_retried")``).

    A handler's route label is its ``metrics_route`` attribute if it has one, else its class
    name (never the path: ids in paths would make a label per document).
    """

    def __init__(self, *, buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        self._buckets = buckets
        self._requests: dict[tuple[str, str, int], int] = {}
        self._latency: dict[tuple[str, str], Histogram] = {}
        self._couch: dict[str, Histogram] = {}
        self._counters: dict[str, int] = {}

    def record_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one finished HTTP request."""
        key = (route, method, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        self._histogram(self._latency, (route, method)).observe(seconds)

    def record_couch_request(self, record: _Timed) -> None:
        """The client's ``on_request`` hook: one CouchDB request (a ``tac.RequestRecord``)."""
        self._histogram(self._couch, record.method).observe(record.duration)

    def count(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to the counter ``name`` (exported as ``<name>_total``)."""
        self._counters[name] = self._counters.get(name, 0) + amount

    def counter(self, name: str) -> int:
        """The current value of counter ``name``."""
        return self._counters.get(name, 0)

    def _histogram(self, table: dict[Any, Histogram], key: Any) -> Histogram:
        found = table.get(key)
        if found is None:
            found = table[key] = Histogram(self._buckets)
        return found

    def as_json(
        self, *, client_stats: _Stats | None = None, gauges: Mapping[str, Mapping[str, float]] = {}
    ) -> dict[str, Any]:
        """Everything as one JSON-ready object."""
        routes: dict[str, Any] = {}
        for (route, method, status), n in sorted(self._requests.items()):
            entry = routes.setdefault(route, {}).setdefault(method, {"statuses": {}})
            entry["statuses"][str(status)] = n
        for (route, method), hist in self._latency.items():
            routes[route][method]["latency"] = _histogram_json(hist)
        body: dict[str, Any] = {
            "routes": routes,
            "couchdb": {m: _histogram_json(h) for m, h in sorted(self._couch.items())},
            "counters": dict(sorted(self._counters.items())),
            "gauges": {name: dict(values) for name, values in gauges.items()},
        }
        if client_stats is not None:
            body["client"] = _client_json(client_stats)
        return body

    def as_prometheus(
        self, *, client_stats: _Stats | None = None, gauges: Mapping[str, Mapping[str, float]] = {}
    ) -> str:
        """Everything in the Prometheus text exposition format (version 0.0.4)."""
        lines: list[str] = []
        _family(lines, "http_requests_total", "counter", "HTTP requests by route and status")
        for (route, method, status), n in sorted(self._requests.items()):
            lines.append(_sample("http_requests_total", n, route=route, method=method,
                                 status=str(status)))  # fmt: skip
        _family(lines, "http_request_duration_seconds", "histogram", "HTTP request latency")
        for (route, method), hist in sorted(self._latency.items()):
            _histogram_lines(lines, "http_request_duration_seconds", hist,
                             route=route, method=method)  # fmt: skip
        _family(lines, "couchdb_request_duration_seconds", "histogram", "CouchDB latency")
        for method, hist in sorted(self._couch.items()):
            _histogram_lines(lines, "couchdb_request_duration_seconds", hist, method=method)
        for name, value in sorted(self._counters.items()):
            _family(lines, f"{name}_total", "counter", name.replace("_", " "))
            lines.append(_sample(f"{name}_total", value))
        if client_stats is not None:
            _client_lines(lines, client_stats)
        for name, values in sorted(gauges.items()):
            _family(lines, name, "gauge", name.replace("_", " "))
            lines.extend(_sample(name, v, database=db) for db, v in sorted(values.items()))
        return "\n".join(lines) + "\n"


def _histogram_json(hist: Histogram) -> dict[str, Any]:
    return {"count": hist.count, "sum": round(hist.total, 6), "buckets": dict(hist.cumulative())}


def _client_json(stats: _Stats) -> dict[str, Any]:
    return {
        "requests": stats.requests,
        "errors_by_status": {str(k): v for k, v in sorted(stats.errors_by_status.items())},
        "transport_errors": stats.transport_errors,
        "retries": stats.retries,
        "bytes_sent": stats.bytes_sent,
        "bytes_received": stats.bytes_received,
    }


def _client_lines(lines: list[str], stats: _Stats) -> None:
    for name, value in (
        ("couchdb_client_requests_total", stats.requests),
        ("couchdb_client_transport_errors_total", stats.transport_errors),
        ("couchdb_client_retries_total", stats.retries),
        ("couchdb_client_bytes_sent_total", stats.bytes_sent),
        ("couchdb_client_bytes_received_total", stats.bytes_received),
    ):
        _family(lines, name, "counter", name.removesuffix("_total").replace("_", " "))
        lines.append(_sample(name, value))
    _family(lines, "couchdb_client_errors_total", "counter", "CouchDB error answers by status")
    for status, n in sorted(stats.errors_by_status.items()):
        lines.append(_sample("couchdb_client_errors_total", n, status=str(status)))


def _family(lines: list[str], name: str, kind: str, help_text: str) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")


def _histogram_lines(lines: list[str], name: str, hist: Histogram, **labels: str) -> None:
    for le, count in hist.cumulative():
        lines.append(_sample(f"{name}_bucket", count, **labels, le=le))
    lines.append(_sample(f"{name}_sum", round(hist.total, 6), **labels))
    lines.append(_sample(f"{name}_count", hist.count, **labels))


def _sample(name: str, value: float, **labels: str) -> str:
    if not labels:
        return f"{name} {value}"
    shown = ",".join(f'{key}="{_escape(val)}"' for key, val in labels.items())
    return f"{name}{{{shown}}} {value}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


# -- access log ------------------------------------------------------------------------------


def access_log(
    metrics: ServiceMetrics | None = None,
    *,
    log: logging.Logger | None = None,
    skip: Iterable[str] = (),
) -> Callable[[tornado.web.RequestHandler], None]:
    """An Application ``log_function``: one structured record per request (a JSON object as
    the message, the same fields in ``record.access``) and, with ``metrics``, its counts.

    Routes named in ``skip`` (e.g. a health check polled every second) are counted but not
    logged.
    """
    target = log if log is not None else logging.getLogger("tor_async_couchdb.access")
    quiet = frozenset(skip)

    def record(handler: tornado.web.RequestHandler) -> None:
        request = handler.request
        seconds = request.request_time()
        route = str(getattr(handler, "metrics_route", type(handler).__name__))
        status = handler.get_status()
        if metrics is not None:
            metrics.record_request(route, str(request.method), status, seconds)
        if route in quiet:
            return
        fields = {
            "method": request.method,
            "path": request.path,
            "route": route,
            "status": status,
            "ms": round(seconds * 1000, 2),
            "remote": request.remote_ip,
        }
        level = logging.WARNING if status >= 500 else logging.INFO
        target.log(level, "%s", json.dumps(fields), extra={"access": fields})

    return record


# -- graceful shutdown -----------------------------------------------------------------------


class InFlight:
    """Counts the requests being handled, so that a shutdown can wait for them to finish.

    Give one to the application as setting ``tac_in_flight``; :class:`CouchRequestHandler`
    counts itself in and out.
    """

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def count(self) -> int:
        """The number of requests in flight now."""
        return self._count

    def enter(self) -> None:
        """One more request in flight."""
        self._count += 1
        self._idle.clear()

    def leave(self) -> None:
        """One request fewer in flight."""
        self._count = max(0, self._count - 1)
        if self._count == 0:
            self._idle.set()

    async def drained(self, within: float) -> bool:
        """Wait until no request is in flight, at most ``within`` seconds; whether it is so."""
        try:
            await asyncio.wait_for(self._idle.wait(), within)
        except TimeoutError:
            return False
        return True


async def serve_until_signalled(
    app: tornado.web.Application,
    *,
    port: int,
    address: str = "127.0.0.1",
    grace: float = 10.0,
    ready: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
    max_body_size: int = 1024 * 1024,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM (or ``stop`` is set), then shut down gracefully.

    New connections are refused at once; requests in flight (counted by the app's
    ``tac_in_flight`` setting, if any) get ``grace`` seconds to finish; then every connection
    is closed. ``ready(port)`` is called once listening (``port=0`` picks a free port). The
    caller closes its CouchDB client afterwards, when no handler can use it any more.

    Bodies above ``max_body_size`` are refused by Tornado before any handler runs (it closes
    the connection); keep the handlers' own, smaller limit (``tac_max_body``) below it, so
    that ordinary oversize bodies get a JSON 413. ``handle_signals=False`` leaves the
    signals alone (for tests, or a caller that handles them and sets ``stop``).
    """
    stopping = stop if stop is not None else asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()
    for signum in signals:
        loop.add_signal_handler(signum, stopping.set)
    server = tornado.httpserver.HTTPServer(app, max_body_size=max_body_size)
    try:
        sockets = tornado.netutil.bind_sockets(port, address)
        server.add_sockets(sockets)
        if ready is not None:
            ready(int(sockets[0].getsockname()[1]))
        await stopping.wait()
    finally:
        server.stop()
        in_flight = app.settings.get("tac_in_flight")
        if isinstance(in_flight, InFlight) and not await in_flight.drained(grace):
            logger.warning("%d requests still in flight after %s s", in_flight.count, grace)
        # Idle keep-alive connections would otherwise hold the loop open.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.close_all_connections(), grace)
        for signum in signals:
            loop.remove_signal_handler(signum)
