"""HTTP/1.1 over pooled keep-alive connections, on ``asyncio.Protocol`` and httptools.

Client CPU per request is what this module is judged by, so the hot path is kept flat: the request
head is built as one string and written with one ``transport.write``; answers are parsed by
llhttp (through httptools) straight from ``data_received``; the read timeout is one lazily armed
timer per connection instead of a timeout context per request; and there is no per-request
logging or task creation.

A connection is a :class:`_Connection` (the protocol object) holding the state of at most one
exchange at a time: HTTP/1.1 pipelining is not used, so bytes that arrive between exchanges are a
server fault and make the connection unusable.

Pool accounting: a *slot* is taken before a connection is opened and freed the moment that
connection is closed (by us, by the peer, or because opening it failed). Requests that find no
idle connection and no free slot wait in FIFO order; a released connection or a freed slot is
handed straight to the first waiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as _ssl
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from .._exceptions import (
    ClientClosedError,
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    IncompleteAnswer,
    InvalidInputError,
    PoolTimeout,
    ProtocolError,
    ReadTimeout,
)
from ._base import Limits, Response, StreamResponse, Timeouts, Transport

__all__ = ["HTTP11Transport", "TransportStats"]

# A streamed body is buffered up to this many unread bytes before the socket stops being read;
# reading resumes once the consumer has drained the buffer down to the low mark. The gap keeps
# pause/resume from toggling on every chunk.
_STREAM_HIGH_WATER: Final = 256 * 1024
_STREAM_LOW_WATER: Final = 64 * 1024

# Bodies up to this size are joined to the head so the request leaves in one write (one syscall);
# larger ones are written separately rather than copied.
_JOIN_BODY_LIMIT: Final = 64 * 1024

# Methods whose requests announce ``Content-Length: 0`` even without a body: HTTP asks for it,
# and some servers and proxies answer 411 Length Required otherwise.
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})

# A timer fired this close to its deadline counts as expired; the loop may run a timer up to its
# clock resolution early, and re-arming for the last microseconds would only spin.
_TIMER_SLACK: Final = 1e-3

# How long aclose() waits for closed sockets to be released by the event loop.
_CLOSE_WAIT: Final = 1.0


@dataclass(frozen=True, slots=True)
class TransportStats:
    """A snapshot of a transport's counters (see :attr:`HTTP11Transport.stats`)."""

    bytes_sent: int
    bytes_received: int
    connections_opened: int
    open_connections: int


def _connection_lost(message: str, *, method: str, url: str, stale: bool) -> ConnectionLost:
    error = ConnectionLost(message, method=method, url=url)
    # ``stale``: a reused keep-alive connection broke before any byte of the answer arrived, so the
    # server most likely closed it while idle and never saw the request; the layer above may
    # retry safe requests on it.
    error.stale = stale
    return error


class HTTP11Transport(Transport):
    """An HTTP/1.1 keep-alive connection pool to one origin.

    No I/O happens here: connections are opened on demand, at most ``limits.max_connections``
    at once. Idle connections are reused last-in first-out, so a burst's surplus connections age
    out (``limits.keepalive_expiry``) instead of being kept warm round-robin.

    Response header names are lower-cased; repeated headers are joined with ``", "`` except
    ``set-cookie``, where the last one wins (a cookie's ``Expires`` holds a comma, so joining
    would be ambiguous; CouchDB sets one cookie).

    Callers must not pass ``Host`` or ``Content-Length``: the transport writes them.
    """

    def __init__(
        self,
        *,
        scheme: str,
        host: str,
        port: int,
        ssl: _ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeouts: Timeouts = Timeouts(),  # noqa: B008 - frozen value object
        limits: Limits = Limits(),  # noqa: B008 - frozen value object
    ) -> None:
        if scheme not in ("http", "https"):
            raise InvalidInputError(f"scheme must be 'http' or 'https', not {scheme!r}")
        if ssl is not None and scheme == "http":
            raise InvalidInputError("an SSL context was given for an http:// origin")
        self._scheme = scheme
        self._host = host
        self._port = port
        self._ssl = ssl
        self._server_hostname = server_hostname
        self._timeouts = timeouts
        self._limits = limits
        netloc_host = f"[{host}]" if ":" in host else host
        self._origin = f"{scheme}://{netloc_host}:{port}"
        default_port = 443 if scheme == "https" else 80
        host_value = netloc_host if port == default_port else f"{netloc_host}:{port}"
        self._host_line = f"Host: {host_value}\r\n"

        self._idle: list[_Connection] = []  # newest last
        self._connections: set[_Connection] = set()  # open, idle or in use
        self._slots_taken = 0  # open connections plus ones being opened
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self._closed = False

        self._bytes_sent = 0
        self._bytes_received = 0
        self._connections_opened = 0

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<HTTP11Transport {self._origin} {state}"
            f" connections={len(self._connections)}/{self._limits.max_connections}>"
        )

    # -- observability ---------------------------------------------------------------------

    @property
    def bytes_sent(self) -> int:
        """Bytes written to sockets: request heads and bodies."""
        return self._bytes_sent

    @property
    def bytes_received(self) -> int:
        """Bytes read from sockets, as they came (before dechunking)."""
        return self._bytes_received

    @property
    def connections_opened(self) -> int:
        """Connections successfully opened since the transport was made."""
        return self._connections_opened

    @property
    def open_connections(self) -> int:
        """Sockets open now, idle or in use (not counting ones still being opened)."""
        return len(self._connections)

    @property
    def stats(self) -> TransportStats:
        """All counters at once, as a frozen snapshot."""
        return TransportStats(
            bytes_sent=self._bytes_sent,
            bytes_received=self._bytes_received,
            connections_opened=self._connections_opened,
            open_connections=len(self._connections),
        )

    # -- requests --------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None = None,
    ) -> Response:
        """Send one request and return the whole answer.

        Raises :class:`ConnectError`, :class:`ConnectTimeout`, :class:`PoolTimeout`,
        :class:`ReadTimeout`, :class:`ConnectionLost` (``stale`` set when a reused idle
        connection turned out closed), :class:`ProtocolError`, :class:`ClientClosedError`, and
        :class:`InvalidInputError` for a line break inside the method, target or a header.
        """
        head = self._encode_head(method, target, headers, body)
        conn = self._take_idle() if self._idle else None
        if conn is None:
            conn = await self._acquire(method, target, self._timeouts)
        try:
            response = await conn.send(method, target, head, body, self._timeouts.read)
        except BaseException:
            # Also on cancellation: the answer is unfinished, so the connection's state is
            # unknown and _release_or_close closes it. (Should the answer have completed just
            # before the cancellation, it is reused.)
            self._release_or_close(conn)
            raise
        self._release_or_close(conn)
        return response

    def stream(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None = None,
        *,
        timeouts: Timeouts | None = None,
    ) -> _StreamContext:
        """Send one request and read its answer piece by piece inside ``async with``.

        ``timeouts`` replaces the transport's own for this request; its ``read`` bounds each
        wait for the head and for the next piece of the body. Raises like :meth:`request`.
        """
        head = self._encode_head(method, target, headers, body)
        return _StreamContext(
            self,
            method=method,
            target=target,
            head=head,
            body=body,
            timeouts=timeouts or self._timeouts,
        )

    async def aclose(self) -> None:
        """Close every connection; requests under way and waiting fail with
        :class:`ClientClosedError`. Idempotent."""
        if self._closed:
            return
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(self._closed_error(None, None))
        lost: list[asyncio.Future[None]] = []
        for conn in list(self._connections):
            lost.append(conn.lost)
            conn.fail(self._closed_error(conn.method, conn.target))
        if lost:
            # Aborted sockets are released by the loop one iteration later; waiting for that
            # keeps "unclosed transport" warnings away from callers that close the loop next.
            await asyncio.wait(lost, timeout=_CLOSE_WAIT)

    # -- internals ---------------------------------------------------------------------------

    def _url(self, target: str | None) -> str:
        return self._origin + (target or "")

    def _closed_error(self, method: str | None, target: str | None) -> ClientClosedError:
        return ClientClosedError(
            "the transport is closed", method=method, url=self._url(target) if method else None
        )

    def _encode_head(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes | None
    ) -> bytes:
        if body is not None:
            length = f"Content-Length: {len(body)}\r\n"
        elif method in _BODY_METHODS:
            length = "Content-Length: 0\r\n"
        else:
            length = ""
        lines = "".join([f"{name}: {value}\r\n" for name, value in headers])
        text = f"{method} {target} HTTP/1.1\r\n{self._host_line}{length}{lines}\r\n"
        # Every line break must be one we wrote: a CR or LF smuggled inside a header value (or
        # the target) would let a caller's input forge headers or whole requests. Counting is far
        # cheaper than checking each header.
        expected = 3 + len(headers) + (1 if length else 0)
        if text.count("\n") != expected or text.count("\r") != expected:
            raise InvalidInputError(
                "line break in the method, target or a header",
                method=method,
                url=self._url(target),
            )
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError:
            raise InvalidInputError(
                "the method, target or a header holds a character outside Latin-1",
                method=method,
                url=self._url(target),
            ) from None

    def _take_idle(self) -> _Connection | None:
        """The most recently used idle connection that is still fresh, or ``None``."""
        idle = self._idle
        now = idle[-1].loop.time()
        expiry = self._limits.keepalive_expiry
        # Idle connections closed by the peer have already removed themselves; what is left to
        # check is age. With LIFO reuse the oldest sit at the bottom.
        while idle and idle[0].idle_since + expiry <= now:
            idle.pop(0).close()
        return idle.pop() if idle else None

    async def _acquire(self, method: str, target: str, timeouts: Timeouts) -> _Connection:
        while True:
            if self._closed:
                raise self._closed_error(method, target)
            if self._idle:
                conn = self._take_idle()
                if conn is not None:
                    return conn
            if self._slots_taken < self._limits.max_connections:
                self._slots_taken += 1
                return await self._open(method, target, timeouts)
            handed = await self._wait_for_turn(method, target, timeouts)
            if handed is None:  # handed a free slot rather than a connection
                return await self._open(method, target, timeouts)
            if not handed.closed:
                return handed
            # The peer closed it while it was being handed over; closing it freed its slot
            # for the next waiter, so queue again.

    async def _wait_for_turn(
        self, method: str, target: str, timeouts: Timeouts
    ) -> _Connection | None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[_Connection | None] = loop.create_future()
        self._waiters.append(waiter)
        timer = None
        if timeouts.pool is not None:
            timer = loop.call_later(
                timeouts.pool, self._pool_timed_out, waiter, method, target, timeouts.pool
            )
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Cancelled just after being handed a connection or slot: pass it on.
                handed = waiter.result()
                if handed is None:
                    self._free_slot()
                else:
                    self._release_or_close(handed)
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _pool_timed_out(
        self,
        waiter: asyncio.Future[_Connection | None],
        method: str,
        target: str,
        timeout: float,
    ) -> None:
        if not waiter.done():
            waiter.set_exception(
                PoolTimeout(
                    f"no pooled connection became free within {timeout} s",
                    method=method,
                    url=self._url(target),
                )
            )

    async def _open(self, method: str, target: str, timeouts: Timeouts) -> _Connection:
        """Open a connection in a slot the caller has already taken."""
        loop = asyncio.get_running_loop()
        conn = _Connection(self, loop)
        ssl_context = self._ssl
        if ssl_context is None and self._scheme == "https":
            # Built on first use, not in the constructor: loading the CA store is file I/O.
            ssl_context = self._ssl = _ssl.create_default_context()
        try:
            async with asyncio.timeout(timeouts.connect):
                await loop.create_connection(
                    lambda: conn,
                    self._host,
                    self._port,
                    ssl=ssl_context,
                    server_hostname=self._server_hostname if ssl_context else None,
                )
        except BaseException as exc:
            self._free_slot()
            url = self._url(target)
            if isinstance(exc, TimeoutError):
                raise ConnectTimeout(
                    f"connecting took longer than {timeouts.connect} s", method=method, url=url
                ) from None
            if isinstance(exc, OSError):
                raise ConnectError(f"cannot connect: {exc}", method=method, url=url) from exc
            raise
        self._connections.add(conn)
        self._connections_opened += 1
        if self._closed:  # aclose() ran while connecting
            conn.close()
            raise self._closed_error(method, target)
        return conn

    def _free_slot(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to the waiter
                return
        self._slots_taken -= 1

    def _release_or_close(self, conn: _Connection) -> None:
        """Return a connection after an exchange: to a waiter or the idle list if its answer
        completed and allows keep-alive, otherwise close it."""
        conn.released = True
        if not conn.reusable() or self._closed:
            conn.close()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        # The server's keep-alive clock started with its last write, so the time our last byte
        # arrived is the better estimate of the connection's idle age (and saves a clock read).
        conn.idle_since = conn.last_activity
        self._idle.append(conn)

    def _connection_closed(self, conn: _Connection) -> None:
        """Called once by every connection as it closes, whoever closed it."""
        if conn not in self._connections:  # failed while opening: _open frees the slot
            return
        self._connections.discard(conn)
        with contextlib.suppress(ValueError):
            self._idle.remove(conn)
        self._free_slot()


class _Connection(asyncio.Protocol):
    """One socket and the state of the exchange running on it."""

    __slots__ = (
        "_body_to_eof",
        "_buffer",
        "_buffered",
        "_chunks",
        "_complete",
        "_error",
        "_got_bytes",
        "_head_method",
        "_headers",
        "_keep_alive",
        "_owner",
        "_parser",
        "_paused",
        "_read_timeout",
        "_response_waiter",
        "_reused",
        "_status",
        "_streaming",
        "_timer",
        "_timing",
        "_transport",
        "_waiter",
        "closed",
        "idle_since",
        "last_activity",
        "loop",
        "lost",
        "method",
        "released",
        "target",
    )

    def __init__(self, owner: HTTP11Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._owner = owner
        self.loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser: HttpResponseParser | None = None
        self.closed = False
        self.lost: asyncio.Future[None] = loop.create_future()
        self.idle_since = 0.0
        self.method = ""
        self.target = ""
        # Exchange state. ``_complete`` is true between exchanges too: bytes arriving then are
        # not an answer to anything.
        self._complete = True
        self.released = True  # not lent to a request or stream (idle, or being handed over)
        self._reused = False
        self._got_bytes = False
        self._head_method = False
        self._status = 0
        self._headers: dict[str, str] = {}
        self._chunks: list[bytes] = []
        self._keep_alive = False
        self._body_to_eof = False
        self._error: BaseException | None = None
        self._response_waiter: asyncio.Future[Response] | None = None
        # Read timeout: see _arm_timer.
        self._timer: asyncio.TimerHandle | None = None
        self._timing = False
        self._read_timeout: float | None = None
        self.last_activity = loop.time()  # when the last byte arrived (or the last wait began)
        # Streaming state.
        self._streaming = False
        self._buffer: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None

    # -- starting an exchange ----------------------------------------------------------------

    def _start(self, method: str, target: str, head: bytes, body: bytes | None) -> None:
        self.method = method
        self.target = target
        self._reused = self._parser is not None
        if self._parser is None or self._head_method:
            # A HEAD answer's Content-Length describes a body that never comes, and httptools
            # cannot be told so: the parser of the last exchange, if it was a HEAD, still
            # expects that body and is replaced.
            self._parser = HttpResponseParser(self)
        self._head_method = method == "HEAD"
        self._complete = False
        self.released = False
        self._got_bytes = False
        self._status = 0
        self._headers = {}
        self._chunks = []
        self._body_to_eof = False
        transport = self._transport
        assert transport is not None  # set by connection_made before the pool hands us out
        if body and len(body) <= _JOIN_BODY_LIMIT:
            head += body
            body = None
        transport.write(head)
        sent = len(head)
        if body:
            transport.write(body)
            sent += len(body)
        self._owner._bytes_sent += sent

    def send(
        self, method: str, target: str, head: bytes, body: bytes | None, read: float | None
    ) -> asyncio.Future[Response]:
        """Start a plain exchange; the future resolves to the whole answer."""
        self._streaming = False
        self._start(method, target, head, body)
        waiter: asyncio.Future[Response] = self.loop.create_future()
        self._response_waiter = waiter
        self._read_timeout = read
        if read is not None:
            # For a plain request the read timeout limits inactivity from the request being
            # sent to the answer's end; data_received moves last_activity on.
            self._timing = True
            self.last_activity = now = self.loop.time()
            self._arm_timer(now + read)
        return waiter

    async def send_streaming(
        self, method: str, target: str, head: bytes, body: bytes | None, read: float | None
    ) -> None:
        """Start a streamed exchange and wait for the answer's head."""
        self._streaming = True
        self._buffer.clear()
        self._buffered = 0
        self._response_waiter = None
        self._read_timeout = read
        self._start(method, target, head, body)
        while self._status < 200 and not self._complete:
            await self.wait()

    def reusable(self) -> bool:
        # A paused stream could not even see the peer close while idle.
        return (
            self._complete
            and self._keep_alive
            and not self.closed
            and self._error is None
            and not self._paused
        )

    # -- the read timeout --------------------------------------------------------------------

    # One timer per connection, armed lazily: an exchange only records when it started or last
    # received bytes, and the timer, when it fires, either finds the exchange finished (and
    # lapses), or re-arms itself for the new deadline, or fails the exchange. For the usual
    # answer arriving well within the read timeout this costs no timer work at all, where a
    # timer per request would cost a heap push and a cancellation each time.

    def _arm_timer(self, deadline: float) -> None:
        timer = self._timer
        if timer is None:
            self._timer = self.loop.call_at(deadline, self._timer_fired)
        elif timer.when() > deadline:  # armed by an exchange with a longer timeout
            timer.cancel()
            self._timer = self.loop.call_at(deadline, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        if not self._timing or self._read_timeout is None:
            return
        deadline = self.last_activity + self._read_timeout
        if self.loop.time() + _TIMER_SLACK < deadline:
            self._timer = self.loop.call_at(deadline, self._timer_fired)
            return
        what = "the next part of the answer" if self._status else "an answer"
        self.fail(
            ReadTimeout(
                f"no data for {self._read_timeout} s while waiting for {what}",
                method=self.method,
                url=self._owner._url(self.target),
            )
        )

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._owner._bytes_received += len(data)
        if self._complete:
            # Nothing was asked: a server that talks out of turn (often a 408 just before it
            # closes an idle connection) cannot be trusted with the next request.
            self._keep_alive = False
            if self.released:
                self.close()
            return
        self._got_bytes = True
        self.last_activity = self.loop.time()
        parser = self._parser
        assert parser is not None
        try:
            parser.feed_data(data)
        except HttpParserUpgrade:
            self._fail_protocol("the server switched protocols unasked")
        except HttpParserError as exc:
            self._fail_protocol(f"malformed answer: {exc}")

    def eof_received(self) -> bool:
        self._peer_closed(None)
        return False  # let asyncio close the socket (connection_lost follows)

    def connection_lost(self, exc: Exception | None) -> None:
        self._peer_closed(exc)
        self.close()
        if not self.lost.done():
            self.lost.set_result(None)

    def _peer_closed(self, exc: Exception | None) -> None:
        self._keep_alive = False
        if self.closed:  # we closed it; whoever did has dealt with the exchange
            return
        if self._complete:
            if self.released:
                self.close()  # idle: leave the pool now, not when it is next picked
            return
        if self._body_to_eof:
            self._finish()  # the end of the connection is the end of the body
            return
        if self._status:
            self.fail(
                IncompleteAnswer(
                    "the connection closed before the answer was complete",
                    method=self.method,
                    url=self._owner._url(self.target),
                )
            )
            return
        if exc is not None:
            message = f"the connection broke before any answer: {exc}"
        else:
            message = "the connection closed before any answer"
        self.fail(
            _connection_lost(
                message,
                method=self.method,
                url=self._owner._url(self.target),
                stale=self._reused and not self._got_bytes,
            )
        )

    # -- httptools callbacks -------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = _HEADER_NAMES.get(name)
        if key is None:
            key = name.decode("latin-1").lower()
            if len(_HEADER_NAMES) < _HEADER_NAMES_MAX:
                _HEADER_NAMES[name] = key
        if key in self._headers:
            self._repeated_header(key, value.decode("latin-1"))
        else:
            self._headers[key] = value.decode("latin-1")

    def _repeated_header(self, key: str, value: str) -> None:
        if key == "set-cookie":
            self._headers[key] = value  # joined cookies would be ambiguous: the last one wins
        else:
            self._headers[key] = f"{self._headers[key]}, {value}"

    def on_headers_complete(self) -> None:
        parser = self._parser
        assert parser is not None
        status = self._status = parser.get_status_code()
        if status < 200:  # an interim answer (103 Early Hints); the real one follows
            return
        headers = self._headers
        if self._head_method:
            self._keep_alive = _keep_alive(parser.get_http_version(), headers)
            self._finish()
            return
        self._keep_alive = parser.should_keep_alive()
        if "content-length" not in headers and status not in (204, 304):
            encoding = headers.get("transfer-encoding", "")
            self._body_to_eof = not encoding.lower().endswith("chunked")
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self._complete:
            # Only a HEAD answer can end before its body: the server sent one anyway, and
            # the connection is out of step with it.
            self._keep_alive = False
            return
        if not self._streaming:
            self._chunks.append(body)
            return
        self._buffer.append(body)
        self._buffered += len(body)
        if self._buffered > _STREAM_HIGH_WATER and not self._paused and not self.closed:
            self._paused = True
            assert self._transport is not None
            self._transport.pause_reading()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_message_complete(self) -> None:
        if self._status < 200:
            self._headers = {}
            self._status = 0
            return
        if not self._complete:
            self._finish()

    # -- ending an exchange --------------------------------------------------------------------

    def _finish(self) -> None:
        self._complete = True
        self._timing = False
        response_waiter = self._response_waiter
        if response_waiter is not None:
            self._response_waiter = None
            if not response_waiter.done():
                response_waiter.set_result(
                    Response(self._status, self._headers, b"".join(self._chunks))
                )
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail_protocol(self, message: str) -> None:
        self.fail(ProtocolError(message, method=self.method, url=self._owner._url(self.target)))

    def fail(self, error: BaseException) -> None:
        """End the exchange with ``error`` (raised to whoever waits) and close the socket."""
        if self._error is None and not self._complete:
            self._error = error
        self._timing = False
        response_waiter = self._response_waiter
        if response_waiter is not None:
            self._response_waiter = None
            if not response_waiter.done():
                response_waiter.set_exception(error)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.close()

    def close(self) -> None:
        """Close the socket (dropping anything unsent) and free the pool slot. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self._keep_alive = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.abort()
        elif not self.lost.done():
            self.lost.set_result(None)  # never connected: nothing for the loop to release
        self._owner._connection_closed(self)

    # -- streaming -----------------------------------------------------------------------------

    def take(self) -> bytes | None:
        """The next buffered piece of a streamed body, or ``None`` if none is buffered."""
        if not self._buffer:
            return None
        piece = self._buffer.popleft()
        self._buffered -= len(piece)
        if self._paused and self._buffered <= _STREAM_LOW_WATER:
            self._paused = False
            if not self.closed:
                assert self._transport is not None
                self._transport.resume_reading()
        return piece

    @property
    def body_complete(self) -> bool:
        return self._complete

    async def wait(self) -> None:
        """Wait for the next event of a streamed exchange (the head, a piece of body, the end),
        at most the read timeout. Raises the exchange's error."""
        if self._error is not None:
            raise self._error
        waiter: asyncio.Future[None] = self.loop.create_future()
        self._waiter = waiter
        read = self._read_timeout
        if read is not None:
            self._timing = True
            self.last_activity = now = self.loop.time()
            self._arm_timer(now + read)
        try:
            await waiter
        finally:
            self._waiter = None
            self._timing = False

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> dict[str, str]:
        return self._headers


# Servers send the same dozen header names again and again: decoding and lower-casing each one
# per answer was the transport's largest own cost. A bounded cache of the names seen.
_HEADER_NAMES: dict[bytes, str] = {}
_HEADER_NAMES_MAX = 512


def _keep_alive(version: str, headers: dict[str, str]) -> bool:
    connection = headers.get("connection", "").lower()
    if version == "1.1":
        return "close" not in connection
    return "keep-alive" in connection


class _HTTP11StreamResponse(StreamResponse):
    """The answer of :meth:`HTTP11Transport.stream`, read from its connection as it arrives."""

    def __init__(self, conn: _Connection) -> None:
        self.status = conn.status
        self.headers = conn.headers
        self._conn = conn
        self.released = False  # set when the stream's context exits

    def __repr__(self) -> str:
        return f"<StreamResponse {self.status}>"

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while True:
            if self.released:
                # The connection may already serve another request.
                raise RuntimeError("the stream was read after its context exited")
            piece = conn.take()
            if piece is not None:
                yield piece
            elif conn.body_complete:
                return
            else:
                await conn.wait()

    async def aiter_lines(self) -> AsyncIterator[bytes]:
        partial: list[bytes] = []  # a line still arriving, possibly over many pieces
        async for piece in self.aiter_bytes():
            lines = piece.split(b"\n")
            if len(lines) == 1:
                partial.append(piece)
                continue
            if partial:
                partial.append(lines[0])
                lines[0] = b"".join(partial)
                partial.clear()
            last = lines.pop()
            if last:
                partial.append(last)
            for line in lines:
                yield line[:-1] if line.endswith(b"\r") else line
        if partial:
            line = b"".join(partial)
            yield line[:-1] if line.endswith(b"\r") else line

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self.aiter_bytes()])


class _StreamContext:
    """``async with transport.stream(...) as response``: holds the connection until exit."""

    __slots__ = (
        "_body",
        "_conn",
        "_head",
        "_method",
        "_response",
        "_target",
        "_timeouts",
        "_transport",
    )

    def __init__(
        self,
        transport: HTTP11Transport,
        *,
        method: str,
        target: str,
        head: bytes,
        body: bytes | None,
        timeouts: Timeouts,
    ) -> None:
        self._transport = transport
        self._method = method
        self._target = target
        self._head = head
        self._body = body
        self._timeouts = timeouts
        self._conn: _Connection | None = None
        self._response: _HTTP11StreamResponse | None = None

    async def __aenter__(self) -> StreamResponse:
        if self._conn is not None:
            raise RuntimeError("a stream context can be entered only once")
        transport = self._transport
        conn = await transport._acquire(self._method, self._target, self._timeouts)
        self._conn = conn
        try:
            await conn.send_streaming(
                self._method, self._target, self._head, self._body, self._timeouts.read
            )
        except BaseException:
            transport._release_or_close(conn)
            raise
        self._response = _HTTP11StreamResponse(conn)
        return self._response

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._response is not None:
            self._response.released = True
        conn = self._conn
        if conn is not None and not conn.released:
            # With the body fully read the connection goes back to the pool (even if the
            # caller's block failed: its state is known). A body left unread, because the
            # caller broke out of a feed or failed, leaves it mid-answer: it is closed.
            self._transport._release_or_close(conn)
