"""The client: one CouchDB server, its connection pool, authentication, retries and logging.

Every request of every layer above goes through :meth:`CouchDB._send`, so retries, session
renewal, counters and the one log record per request live in one place.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import warnings
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import unquote, urlsplit

from ._codec import check_db_name, dumps, loads, query_string
from ._config import Auth, BasicAuth, BearerAuth, RetryPolicy, SessionAuth
from ._exceptions import (
    ClientClosedError,
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    HTTPStatusError,
    InvalidInputError,
    NotFound,
    ProtocolError,
    ReadTimeout,
    TooManyRequests,
    TransportError,
    status_error,
)
from ._transport import HTTP11Transport, Limits, Response, StreamResponse, Timeouts, Transport

if TYPE_CHECKING:
    from ._database import Database

__all__ = ["ClientStats", "CouchDB", "InsecureTLSWarning", "RequestRecord"]

logger = logging.getLogger("tor_async_couchdb")

_JSON = ("Content-Type", "application/json")
_SAFE_METHODS = frozenset({"GET", "HEAD"})
_EXPECTED_STATUSES = frozenset({404, 409, 412})


class InsecureTLSWarning(UserWarning):
    """TLS certificate verification was turned off."""


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What the ``on_request`` hook receives after every request (also failed ones)."""

    method: str
    url: str
    status: int | None
    duration: float
    retries: int
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class ClientStats:
    """Counters since the client was made: requests sent (retries included), answers by
    error status, transport errors, retries, and bytes on the wire."""

    requests: int
    errors_by_status: Mapping[int, int]
    transport_errors: int
    retries: int
    bytes_sent: int
    bytes_received: int


@dataclass(slots=True)
class _Counters:
    requests: int = 0
    transport_errors: int = 0
    retries: int = 0
    errors_by_status: dict[int, int] = field(default_factory=dict)


def _ssl_context(verify: bool | str, client_cert: str | tuple[str, str] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    if verify is False:
        warnings.warn(
            "TLS certificate verification is off: the connection can be intercepted",
            InsecureTLSWarning,
            stacklevel=3,
        )
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if isinstance(client_cert, tuple):
        context.load_cert_chain(client_cert[0], client_cert[1])
    elif client_cert is not None:
        context.load_cert_chain(client_cert)
    return context


def _auth_from(
    auth: Auth | tuple[str, str] | None, url_user: str | None, url_pw: str | None
) -> Auth | None:
    if isinstance(auth, tuple):
        if len(auth) != 2 or not all(isinstance(part, str) for part in auth):
            raise InvalidInputError("auth must be (user, password), BasicAuth, SessionAuth...")
        return BasicAuth(auth[0], auth[1])
    if auth is not None:
        return auth
    if url_user is not None:
        return BasicAuth(unquote(url_user), unquote(url_pw or ""))
    return None


class CouchDB:
    """An asynchronous client of one CouchDB server (or cluster behind one URL).

    ``url`` may carry credentials (``http://user:pass@host:5984``), which become basic auth
    unless ``auth`` is given: a ``(user, password)`` tuple (basic), :class:`BasicAuth`,
    :class:`SessionAuth` or :class:`BearerAuth`. ``verify`` is True (system CAs), a CA bundle
    path, or False (warns); ``client_cert`` a PEM path or ``(cert, key)`` paths. ``transport``
    replaces the HTTP implementation (tests pass a mock). ``on_request`` is called with a
    :class:`RequestRecord` after every request, for tracing.

    Use it as ``async with CouchDB(...) as couch:`` or call :meth:`aclose` when done.
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:5984",
        *,
        auth: Auth | tuple[str, str] | None = None,
        timeouts: Timeouts | None = None,
        limits: Limits | None = None,
        retry: RetryPolicy | None = None,
        verify: bool | str = True,
        client_cert: str | tuple[str, str] | None = None,
        transport: Transport | None = None,
        on_request: Callable[[RequestRecord], None] | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
            raise InvalidInputError(f"the CouchDB URL must be http(s)://host[:port], got {shown!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self._origin = f"{parts.scheme}://{parts.hostname}:{port}"
        self._prefix = parts.path.rstrip("/")
        self._auth = _auth_from(auth, parts.username, parts.password)
        self._retry = retry if retry is not None else RetryPolicy()
        self._timeouts = timeouts if timeouts is not None else Timeouts()
        self._on_request = on_request
        if transport is None:
            context = _ssl_context(verify, client_cert) if parts.scheme == "https" else None
            transport = HTTP11Transport(
                scheme=parts.scheme,
                host=parts.hostname,
                port=port,
                ssl=context,
                server_hostname=parts.hostname if context else None,
                timeouts=self._timeouts,
                limits=limits if limits is not None else Limits(),
            )
        self._transport = transport
        self._headers = self._fixed_headers()
        self._cookie: str | None = None
        self._login_lock: asyncio.Lock | None = None
        self._counters = _Counters()
        self._closed = False

    def _fixed_headers(self) -> list[tuple[str, str]]:
        # pouchdb-server answers text/plain unless asked for JSON; CouchDB ignores it.
        headers = [("Accept", "application/json")]
        if isinstance(self._auth, BasicAuth | BearerAuth):
            headers.append(("Authorization", self._auth.header()))
        return headers

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<CouchDB {self.url} {state} auth={self._auth!r}>"

    @property
    def url(self) -> str:
        """The server's URL, without credentials."""
        return self._origin + self._prefix

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    def stats(self) -> ClientStats:
        """A snapshot of the client's counters."""
        counters = self._counters
        wire = getattr(self._transport, "stats", None)
        return ClientStats(
            requests=counters.requests,
            errors_by_status=dict(counters.errors_by_status),
            transport_errors=counters.transport_errors,
            retries=counters.retries,
            bytes_sent=getattr(wire, "bytes_sent", 0),
            bytes_received=getattr(wire, "bytes_received", 0),
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every connection. Idempotent; the client cannot be used afterwards."""
        if self._closed:
            return
        self._closed = True
        await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(
                f"{self!r} was garbage-collected without aclose(): connections leaked",
                ResourceWarning,
                stacklevel=1,
            )

    # -- the request engine ------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        *,
        safe: bool | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> Response:
        """Send one request with auth, retries of transient failures, counters and logging.

        Returns any answer, error statuses included (see :meth:`_json`). Raises
        :class:`TransportError` subclasses and :class:`ClientClosedError`.
        """
        response, _ = await self._exchange(method, target, body, safe=safe, headers=headers)
        return response

    async def _exchange(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        *,
        safe: bool | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> tuple[Response, bool]:
        """:meth:`_send`, also telling whether an earlier attempt may have been carried out.

        That is the case when an attempt was retried after its answer was lost (the connection
        broke mid-way, a read timed out, a gateway failed): a final 409 may then be the echo of
        this very request's first attempt, which callers writing documents must check.
        """
        if self._closed:
            raise ClientClosedError("the CouchDB client is closed")
        if safe is None:
            safe = method in _SAFE_METHODS
        target = self._prefix + target
        base_headers = self._base_headers(body, headers)
        started = time.perf_counter()
        retries = 0
        renewed = False
        maybe_done = False
        while True:
            request_headers = await self._with_cookie(base_headers)
            self._counters.requests += 1
            try:
                response = await self._transport.request(method, target, request_headers, body)
            except TransportError as error:
                self._counters.transport_errors += 1
                delay = self._retry_delay(error, None, safe, retries)
                if delay is None:
                    self._record(
                        method, target, status=None, started=started, retries=retries, error=error
                    )
                    raise
                maybe_done = maybe_done or _maybe_carried_out(error, None)
                retries += 1
                await self._pause(method, target, delay, retries, str(error))
                continue
            status = response.status
            if status < 400:
                if isinstance(self._auth, SessionAuth):
                    self._take_cookie(response)
                self._record(
                    method, target, status=status, started=started, retries=retries, error=None
                )
                return response, maybe_done
            self._counters.errors_by_status[status] = (
                self._counters.errors_by_status.get(status, 0) + 1
            )
            if status == 401 and isinstance(self._auth, SessionAuth) and not renewed:
                # The session expired: log in again, once, and repeat the request.
                renewed = True
                self._cookie = None
                continue
            delay = self._retry_delay(None, response, safe, retries)
            if delay is None:
                self._record(
                    method, target, status=status, started=started, retries=retries, error=None
                )
                return response, maybe_done
            maybe_done = maybe_done or _maybe_carried_out(None, status)
            retries += 1
            await self._pause(method, target, delay, retries, f"status {status}")

    def _base_headers(
        self, body: bytes | None, extra: Sequence[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        if not extra:
            return [*self._headers, _JSON] if body is not None else self._headers
        # A caller's header replaces the client's own of that name (an attachment's Accept).
        names = {name.lower() for name, _ in extra}
        headers = [item for item in self._headers if item[0].lower() not in names]
        headers += extra
        if body is not None and "content-type" not in names:
            headers.append(_JSON)
        return headers

    async def _with_cookie(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        if isinstance(self._auth, SessionAuth):
            return [*headers, ("Cookie", await self._session_cookie())]
        return headers

    def _retry_delay(
        self, error: TransportError | None, response: Response | None, safe: bool, retries: int
    ) -> float | None:
        """Seconds to wait before retrying, or None if this failure is not retried."""
        policy = self._retry
        if retries >= policy.max_retries:
            return None
        if error is not None:
            # A connection that never opened never carried the request: any method may retry.
            # (A reused connection that broke before any answer byte, "stale", most likely was
            # closed as idle before the request arrived, but the server may have read it: only
            # requests that are safe to repeat are retried then.)
            if isinstance(error, ConnectError | ConnectTimeout):
                return policy.delay(retries + 1)
            if safe and isinstance(error, ConnectionLost | ReadTimeout):
                return policy.delay(retries + 1)
            return None
        assert response is not None
        if not safe or response.status not in policy.statuses:
            return None
        return policy.delay(retries + 1, _retry_after(response))

    async def _pause(self, method: str, target: str, delay: float, retry: int, why: str) -> None:
        self._counters.retries += 1
        logger.warning(
            "%s %s failed (%s); retry %d of %d in %.0f ms",
            method,
            self._origin + target,
            why,
            retry,
            self._retry.max_retries,
            delay * 1000,
        )
        await asyncio.sleep(delay)

    def _record(
        self,
        method: str,
        target: str,
        *,
        status: int | None,
        started: float,
        retries: int,
        error: BaseException | None,
    ) -> None:
        duration = time.perf_counter() - started  # one measure for the log and the hook
        if error is not None or status is None:
            level = logging.WARNING
        elif status < 400:
            level = logging.DEBUG
        elif status in _EXPECTED_STATUSES:
            # Answers that callers handle as ordinary outcomes (a missing doc, a conflict to
            # retry, a database that exists): a warning for each would drown the real ones.
            level = logging.INFO
        else:
            level = logging.WARNING
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "%s %s %s %.1f ms retries=%d",
                method,
                self._origin + target,
                status if status is not None else type(error).__name__,
                duration * 1000,
                retries,
            )
        if self._on_request is not None:
            record = RequestRecord(
                method=method,
                url=self._origin + target,
                status=status,
                duration=duration,
                retries=retries,
                error=error,
            )
            try:
                self._on_request(record)
            except Exception:
                # A failing tracing hook must not turn a request that was carried out (a
                # committed write, say) into an error for the caller.
                logger.exception("the on_request hook failed for %s %s", method, record.url)

    async def _json(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        *,
        safe: bool | None = None,
        doc_id: str | None = None,
    ) -> Any:
        """Send a request and decode its JSON answer; error statuses raise
        :class:`HTTPStatusError` subclasses carrying CouchDB's ``error`` and ``reason``."""
        response = await self._send(method, target, body, safe=safe)
        if response.status >= 300:
            raise self._status_error(method, target, response, doc_id)
        return loads(response.body, method=method, url=self._origin + self._prefix + target)

    def _status_error(
        self, method: str, target: str, response: Response, doc_id: str | None
    ) -> HTTPStatusError:
        error: str | None = None
        reason: str | None = None
        if response.body:
            try:
                answer = loads(response.body, method=method, url="")
            except TransportError:
                reason = response.body[:200].decode("utf-8", "replace")
            else:
                if isinstance(answer, dict):
                    error = _text(answer.get("error"))
                    reason = _text(answer.get("reason"))
        exception = status_error(
            response.status,
            method=method,
            url=self._origin + self._prefix + target,
            error=error,
            reason=reason,
            doc_id=doc_id,
        )
        if isinstance(exception, TooManyRequests):
            exception.retry_after = _retry_after(response)
        return exception

    @asynccontextmanager
    async def _stream(
        self, method: str, target: str, body: bytes | None = None, *, read_timeout: float | None
    ) -> AsyncIterator[StreamResponse]:
        """Open a streamed answer (no retries: the caller resumes); error statuses raise.

        An expired cookie session is renewed once, as for :meth:`_send`.
        """
        if self._closed:
            raise ClientClosedError("the CouchDB client is closed")
        base_headers = self._base_headers(body, ())
        timeouts = Timeouts(
            connect=self._timeouts.connect, read=read_timeout, pool=self._timeouts.pool
        )
        full = self._prefix + target
        session = isinstance(self._auth, SessionAuth)
        for attempt in range(2):
            headers = await self._with_cookie(base_headers)
            started = time.perf_counter()
            self._counters.requests += 1
            try:
                async with self._transport.stream(
                    method, full, headers, body, timeouts=timeouts
                ) as response:
                    status = response.status
                    self._record(
                        method, full, status=status, started=started, retries=0, error=None
                    )
                    if status == 401 and session and attempt == 0:
                        await response.read()
                        self._cookie = None
                        continue
                    if status >= 300:
                        # Read the body: it holds CouchDB's ``error`` and ``reason``.
                        answer = Response(status, response.headers, await response.read())
                        raise self._status_error(method, target, answer, None)
                    if session:
                        self._take_cookie(Response(status, response.headers, b""))
                    yield response
                    return
            except TransportError as error:
                self._counters.transport_errors += 1
                self._record(method, full, status=None, started=started, retries=0, error=error)
                raise

    # -- cookie sessions ---------------------------------------------------------------------

    async def _session_cookie(self) -> str:
        if self._cookie is not None:
            return self._cookie
        if self._login_lock is None:
            self._login_lock = asyncio.Lock()
        async with self._login_lock:
            # Another task may have logged in while this one waited for the lock.
            return self._cookie or await self._login()

    async def _login(self) -> str:
        auth = self._auth
        assert isinstance(auth, SessionAuth)
        body = dumps({"name": auth.user, "password": auth.password})
        target = self._prefix + "/_session"
        started = time.perf_counter()
        self._counters.requests += 1
        try:
            response = await self._transport.request("POST", target, [*self._headers, _JSON], body)
        except TransportError as error:
            self._counters.transport_errors += 1
            self._record("POST", target, status=None, started=started, retries=0, error=error)
            raise
        self._record("POST", target, status=response.status, started=started, retries=0, error=None)
        if response.status >= 300:
            raise self._status_error("POST", "/_session", response, None)
        if not self._take_cookie(response):
            raise ProtocolError(
                "the session login answered without an AuthSession cookie",
                method="POST",
                url=self._origin + target,
            )
        assert self._cookie is not None
        return self._cookie

    def _take_cookie(self, response: Response) -> bool:
        header = response.headers.get("set-cookie")
        if not header:
            return False
        for part in header.replace(",", ";").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "AuthSession" and value:
                self._cookie = f"AuthSession={value}"
                return True
        return False

    # -- the server API ----------------------------------------------------------------------

    def database(self, name: str) -> Database:
        """A handle of database ``name`` (no I/O). Raises :class:`InvalidNameError`."""
        from ._database import Database

        return Database(self, check_db_name(name))

    async def info(self) -> dict[str, Any]:
        """``GET /``: the server's welcome (name, version, vendor)."""
        answer: dict[str, Any] = await self._json("GET", "/")
        return answer

    async def up(self) -> bool:
        """Whether the server is up and ready: ``GET /_up`` (``GET /`` where the server has no
        ``/_up``, as pouchdb-server). Transport errors and 5xx answer False."""
        try:
            try:
                answer = await self._json("GET", "/_up")
            except NotFound:
                answer = {"status": "ok"} if await self.info() else {}
        except (TransportError, HTTPStatusError):
            return False
        return isinstance(answer, dict) and answer.get("status") == "ok"

    async def all_dbs(self) -> list[str]:
        """``GET /_all_dbs``: the names of every database."""
        answer: list[str] = await self._json("GET", "/_all_dbs")
        return answer

    async def uuids(self, count: int = 1) -> list[str]:
        """``GET /_uuids``: ``count`` server-made UUIDs."""
        answer = await self._json("GET", f"/_uuids?count={int(count)}")
        uuids: list[str] = answer["uuids"]
        return uuids

    async def session(self) -> dict[str, Any]:
        """``GET /_session``: who the server thinks this client is."""
        answer: dict[str, Any] = await self._json("GET", "/_session")
        return answer

    async def active_tasks(self) -> list[dict[str, Any]]:
        """``GET /_active_tasks``: compactions, indexing and replications under way."""
        answer: list[dict[str, Any]] = await self._json("GET", "/_active_tasks")
        return answer

    async def replicate(
        self,
        source: str | Mapping[str, Any],
        target: str | Mapping[str, Any],
        *,
        create_target: bool = False,
        continuous: bool = False,
        doc_ids: Sequence[str] | None = None,
        filter: str | None = None,
        selector: Mapping[str, Any] | None = None,
        cancel: bool = False,
    ) -> dict[str, Any]:
        """``POST /_replicate``: replicate once (or continuously) from ``source`` to ``target``.

        Each end is a database name on this server, a URL, or CouchDB's object form
        (``{"url": ..., "headers": {...}}``). Credentials in a URL are moved into an
        ``Authorization`` header so they are not stored in the replication's id or logs.
        """
        body = _replication_body(
            source,
            target,
            create_target=create_target,
            continuous=continuous,
            doc_ids=doc_ids,
            filter_name=filter,
            selector=selector,
        )
        if cancel:
            body["cancel"] = True
        answer: dict[str, Any] = await self._json(
            "POST", "/_replicate", dumps(body, what="replication")
        )
        return answer

    async def schedule_replication(
        self,
        doc_id: str,
        source: str | Mapping[str, Any],
        target: str | Mapping[str, Any],
        *,
        continuous: bool = True,
        create_target: bool = False,
        doc_ids: Sequence[str] | None = None,
        filter: str | None = None,
        selector: Mapping[str, Any] | None = None,
    ) -> str:
        """Create a replication as document ``doc_id`` of the ``_replicator`` database.

        Unlike :meth:`replicate`, it survives server restarts: the way to keep data centers in
        sync. Ends as for :meth:`replicate`. Returns the document's revision; raises
        :class:`Conflict` if a replication of that id exists.
        """
        body = _replication_body(
            source,
            target,
            create_target=create_target,
            continuous=continuous,
            doc_ids=doc_ids,
            filter_name=filter,
            selector=selector,
        )
        answer = await self.database("_replicator").put_doc({"_id": doc_id, **body})
        return str(answer["rev"])

    async def cancel_replication(self, doc_id: str) -> bool:
        """Delete replication ``doc_id`` from ``_replicator``; False if there was none."""
        replicator = self.database("_replicator")
        try:
            doc = await replicator.get_doc(doc_id)
            await replicator.delete_doc(doc_id, doc["_rev"])
        except NotFound:
            return False
        return True

    def _url_of(self, target: str, params: Mapping[str, Any] | None = None) -> str:
        return self._origin + self._prefix + target + query_string(params or {})


def _replication_body(
    source: str | Mapping[str, Any],
    target: str | Mapping[str, Any],
    *,
    create_target: bool,
    continuous: bool,
    doc_ids: Sequence[str] | None,
    filter_name: str | None,
    selector: Mapping[str, Any] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": _replication_end(source),
        "target": _replication_end(target),
    }
    if create_target:
        body["create_target"] = True
    if continuous:
        body["continuous"] = True
    if doc_ids is not None:
        body["doc_ids"] = list(doc_ids)
    if filter_name is not None:
        body["filter"] = filter_name
    if selector is not None:
        body["selector"] = dict(selector)
    return body


def _replication_end(end: str | Mapping[str, Any]) -> str | dict[str, Any]:
    if not isinstance(end, str):
        return dict(end)
    parts = urlsplit(end)
    if parts.username is None:
        # A plain string: pouchdb-server takes no object form (CouchDB takes both).
        return end
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    bare = parts._replace(netloc=netloc).geturl()
    auth = BasicAuth(unquote(parts.username), unquote(parts.password or ""))
    return {"url": bare, "headers": {"Authorization": auth.header()}}


def _maybe_carried_out(error: TransportError | None, status: int | None) -> bool:
    """Whether a failed attempt may still have been carried out by the server."""
    if isinstance(error, ConnectionLost | ReadTimeout):
        return True  # the request was written: the server may have read and carried it out
    return status in (502, 504)  # a gateway lost the answer of a server that may have acted


def _retry_after(response: Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else (None if value is None else str(value))
