"""The request engine: authentication, retries of transient failures, counters, and the one
log record per request, in front of a transport.

Every request of every layer above goes through :meth:`Engine.send` (or :meth:`Engine.stream`),
so retries, session renewal, counters and logging live in one place.
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
from typing import Any
from urllib.parse import unquote

from .._config import Auth, BasicAuth, BearerAuth, RetryPolicy, SessionAuth, Timeouts, TokenAuth
from .._exceptions import (
    ClientClosedError,
    ConfigurationError,
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    HTTPStatusError,
    InvalidInputError,
    ProtocolError,
    ReadTimeout,
    TooManyRequests,
    TransportError,
    status_error,
)
from .._json import dumps, loads
from .._transport import Response, StreamResponse, Transport
from ._urls import query_string

__all__ = [
    "ClientStats",
    "Engine",
    "InsecureTLSWarning",
    "RequestRecord",
    "auth_from",
    "ssl_context",
]

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


def ssl_context(verify: bool | str, client_cert: str | tuple[str, str] | None) -> ssl.SSLContext:
    """The TLS context of a client. Raises :class:`ConfigurationError` naming the file for a CA
    file or client certificate (or key) that is missing, unreadable or not PEM."""
    cafile = verify if isinstance(verify, str) else None
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as error:
        raise _unusable("CA file", cafile, error) from error
    if verify is False:
        warnings.warn(
            "TLS certificate verification is off: the connection can be intercepted",
            InsecureTLSWarning,
            stacklevel=3,
        )
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    cert, key = client_cert if isinstance(client_cert, tuple) else (client_cert, None)
    if cert is not None:
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as error:
            named = cert if key is None else f"{cert} (key {key})"
            raise _unusable("client certificate", named, error) from error
    return context


def _unusable(what: str, path: str | None, error: Exception) -> ConfigurationError:
    # ssl's own messages ("[X509] PEM lib") do not say which file; OSError's name it.
    why = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return ConfigurationError(f"the {what} {path!r} cannot be used: {why}")


def auth_from(
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


class Engine:
    """Sends requests to one server through ``transport``: auth, retries, counters, logging.

    Made by :class:`CouchDB`, which holds it; every database handle of that client shares it.
    """

    def __init__(
        self,
        *,
        origin: str,
        prefix: str,
        auth: Auth | None,
        retry: RetryPolicy,
        timeouts: Timeouts,
        transport: Transport,
        on_request: Callable[[RequestRecord], None] | None,
    ) -> None:
        self._origin = origin
        self._prefix = prefix
        self._auth = auth
        self._retry = retry
        self._timeouts = timeouts
        self._transport = transport
        self._on_request = on_request
        self._headers = self._fixed_headers()
        self._cookie: str | None = None
        self._login_lock: asyncio.Lock | None = None
        self._token: str | None = None
        self._token_expires = 0.0
        self._counters = _Counters()
        self.closed = False

    @property
    def transport(self) -> Transport:
        """The transport requests go through."""
        return self._transport

    @property
    def auth(self) -> Auth | None:
        """The authentication in use (its repr hides secrets)."""
        return self._auth

    @property
    def url(self) -> str:
        """The server's URL, without credentials."""
        return self._origin + self._prefix

    @property
    def retry(self) -> RetryPolicy:
        """The retry policy of transient failures."""
        return self._retry

    def _fixed_headers(self) -> list[tuple[str, str]]:
        # pouchdb-server answers text/plain unless asked for JSON; CouchDB ignores it.
        headers = [("Accept", "application/json")]
        if isinstance(self._auth, BasicAuth | BearerAuth):
            headers.append(("Authorization", self._auth.header()))
        return headers

    def stats(self) -> ClientStats:
        """A snapshot of the counters."""
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

    async def aclose(self) -> None:
        """Close the transport. Idempotent; no request can be sent afterwards."""
        if self.closed:
            return
        self.closed = True
        await self._transport.aclose()

    # -- the request engine ------------------------------------------------------------------

    async def send(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        *,
        safe: bool | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> Response:
        """Send one request with auth, retries of transient failures, counters and logging.

        Returns any answer, error statuses included (see :meth:`json`). Raises
        :class:`TransportError` subclasses and :class:`ClientClosedError`.
        """
        response, _ = await self.exchange(method, target, body, safe=safe, headers=headers)
        return response

    async def exchange(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        *,
        safe: bool | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> tuple[Response, bool]:
        """:meth:`send`, also telling whether an earlier attempt may have been carried out.

        That is the case when an attempt was retried after its answer was lost (the connection
        broke mid-way, a read timed out, a gateway failed): a final 409 may then be the echo of
        this very request's first attempt, which callers writing documents must check.
        """
        if self.closed:
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
            request_headers = await self._with_credentials(base_headers)
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
            if status == 401 and self._renewable() and not renewed:
                # The session or token expired: log in (or fetch a token) again, once, and
                # repeat the request.
                renewed = True
                self._forget_credentials()
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

    async def _with_credentials(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        if isinstance(self._auth, SessionAuth):
            return [*headers, ("Cookie", await self._session_cookie())]
        if isinstance(self._auth, TokenAuth):
            return [*headers, ("Authorization", f"Bearer {await self._current_token()}")]
        return headers

    def _renewable(self) -> bool:
        return isinstance(self._auth, SessionAuth | TokenAuth)

    def _forget_credentials(self) -> None:
        self._cookie = None
        self._token = None

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
        if not safe:
            return None
        if response.status not in policy.statuses and not _fabric_timeout(response):
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

    async def json(
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
        response = await self.send(method, target, body, safe=safe)
        if response.status >= 300:
            raise self.status_error(method, target, response, doc_id)
        return loads(response.body, method=method, url=self._origin + self._prefix + target)

    def status_error(
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
    async def stream(
        self, method: str, target: str, body: bytes | None = None, *, read_timeout: float | None
    ) -> AsyncIterator[StreamResponse]:
        """Open a streamed answer (no retries: the caller resumes); error statuses raise.

        An expired cookie session is renewed once, as for :meth:`send`.
        """
        if self.closed:
            raise ClientClosedError("the CouchDB client is closed")
        base_headers = self._base_headers(body, ())
        timeouts = Timeouts(
            connect=self._timeouts.connect, read=read_timeout, pool=self._timeouts.pool
        )
        full = self._prefix + target
        session = isinstance(self._auth, SessionAuth)
        for attempt in range(2):
            headers = await self._with_credentials(base_headers)
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
                    if status == 401 and self._renewable() and attempt == 0:
                        await response.read()
                        self._forget_credentials()
                        continue
                    if status >= 300:
                        # Read the body: it holds CouchDB's ``error`` and ``reason``.
                        answer = Response(status, response.headers, await response.read())
                        raise self.status_error(method, target, answer, None)
                    if session:
                        self._take_cookie(Response(status, response.headers, b""))
                    yield response
                    return
            except TransportError as error:
                self._counters.transport_errors += 1
                self._record(method, full, status=None, started=started, retries=0, error=error)
                raise

    # -- refreshed tokens --------------------------------------------------------------------

    async def _current_token(self) -> str:
        if self._token is not None and time.monotonic() < self._token_expires:
            return self._token
        if self._login_lock is None:
            self._login_lock = asyncio.Lock()
        async with self._login_lock:
            # Another task may have fetched one while this one waited for the lock.
            if self._token is not None and time.monotonic() < self._token_expires:
                return self._token
            auth = self._auth
            assert isinstance(auth, TokenAuth)
            token = await auth.fetch()
            self._token = token
            lifetime = auth.lifetime if auth.lifetime is not None else float("inf")
            self._token_expires = time.monotonic() + lifetime
            return token

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
            raise self.status_error("POST", "/_session", response, None)
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

    def url_of(self, target: str, params: Mapping[str, Any] | None = None) -> str:
        return self._origin + self._prefix + target + query_string(params or {})


def _maybe_carried_out(error: TransportError | None, status: int | None) -> bool:
    """Whether a failed attempt may still have been carried out by the server."""
    if isinstance(error, ConnectionLost | ReadTimeout):
        return True  # the request was written: the server may have read and carried it out
    return status in (502, 504)  # a gateway lost the answer of a server that may have acted


def _fabric_timeout(response: Response) -> bool:
    """Whether a 500 is a CouchDB cluster's internal timeout (``{"error": "timeout"}``): the
    nodes did not answer each other in time (a busy cluster, a view index being built), which
    a safe request may simply try again."""
    if response.status != 500 or b"timeout" not in response.body:
        return False
    try:
        answer = loads(response.body, method="", url="")
    except TransportError:
        return False
    return isinstance(answer, dict) and answer.get("error") == "timeout"


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
