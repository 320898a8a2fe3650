"""Every configuration value object, small and immutable: time limits and pool bounds of the
transport, authentication, the retry policy of transient failures, the retry policy of
conflicts; and the one backoff computation they share."""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field

from ._exceptions import InvalidInputError

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "BasicAuth",
    "BearerAuth",
    "ConflictRetry",
    "Limits",
    "RetryPolicy",
    "SessionAuth",
    "Timeouts",
    "backoff_delay",
]

# Rows (or documents) per request of the paging iterators: large enough to amortise a request,
# small enough that a page of ~1 KB documents stays around a megabyte.
DEFAULT_PAGE_SIZE = 1000


def backoff_delay(retry: int, backoff: float, max_backoff: float, *, jitter: bool) -> float:
    """Seconds before retry number ``retry`` (1-based): ``backoff * 2**(retry-1)``, at most
    ``max_backoff``; with ``jitter``, a uniform draw up to that ("full jitter")."""
    ceiling = min(max_backoff, backoff * (2 ** (retry - 1)))
    return random.uniform(0, ceiling) if jitter else ceiling


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Time limits in seconds; ``None`` means no limit.

    ``connect``: opening a TCP (and TLS) connection. ``read``: the longest silence while an
    answer is awaited or arrives (an inactivity limit, not a deadline for the whole answer; a
    ``_changes`` feed sets its own). ``pool``: waiting for a free pooled connection.
    """

    connect: float | None = 10.0
    read: float | None = 60.0
    pool: float | None = 60.0


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of the connection pool.

    ``max_connections``: sockets open at once to the origin; requests beyond wait for a free one.
    ``keepalive_expiry``: an idle connection older than this is closed instead of reused.
    """

    max_connections: int = 10
    keepalive_expiry: float = 30.0

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise InvalidInputError("max_connections must be at least 1")
        if self.keepalive_expiry <= 0:
            raise InvalidInputError("keepalive_expiry must be positive")


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """HTTP basic authentication on every request."""

    user: str
    password: str = field(repr=False)

    def header(self) -> str:
        """The ``Authorization`` header value."""
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"


@dataclass(frozen=True, slots=True)
class SessionAuth:
    """Cookie-session authentication: log in at ``_session`` once, send the ``AuthSession``
    cookie, take the renewed cookie the server sends, and log in again on expiry (a 401)."""

    user: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class BearerAuth:
    """A bearer token (JWT) on every request, as CouchDB 3's ``jwt_authentication_handler``
    accepts it."""

    token: str = field(repr=False)

    def header(self) -> str:
        """The ``Authorization`` header value."""
        return f"Bearer {self.token}"


Auth = BasicAuth | SessionAuth | BearerAuth


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of transient failures: capped exponential backoff with full jitter.

    A failure is transient if the connection could not be opened, was refused or reset, or the
    server answered one of ``statuses`` (by default 429, honouring ``Retry-After``, and 502,
    503, 504). Only requests that are safe to repeat are retried after they may have reached the
    server: reads, PUT and DELETE of a known id, and ``_bulk_docs`` whose documents carry ids.
    A 409 is never retried here: that is a decision for the code that knows the document.
    ``RetryPolicy.disabled()`` turns retries off.
    """

    max_retries: int = 3
    backoff: float = 0.1
    max_backoff: float = 5.0
    max_retry_after: float = 30.0
    statuses: frozenset[int] = frozenset({429, 502, 503, 504})

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise InvalidInputError("max_retries must be 0 or more")
        if self.backoff < 0 or self.max_backoff < 0:
            raise InvalidInputError("backoff values must be 0 or more")

    @classmethod
    def disabled(cls) -> RetryPolicy:
        """A policy that never retries."""
        return cls(max_retries=0)

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based).

        Full jitter (a uniform draw up to the capped exponential) spreads the retries of many
        clients that failed at once; a server's ``Retry-After`` wins when it is longer.
        """
        delay = backoff_delay(retry, self.backoff, self.max_backoff, jitter=True)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay


@dataclass(frozen=True, slots=True)
class ConflictRetry:
    """How :meth:`Database.update` (and deletes with ``retry=``) meet a 409 Conflict.

    After a conflict the document is read again and the change applied again, up to
    ``attempts`` writes in all, waiting a capped exponential backoff between them
    (``backoff * 2**(n-1)``, at most ``max_backoff`` seconds; with ``jitter`` a uniform draw up
    to that, which spreads writers that collided at once). ``deadline`` (seconds, optional)
    bounds the whole operation: no retry starts after it. Then :class:`Conflict` is raised.
    """

    attempts: int = 10
    backoff: float = 0.01
    max_backoff: float = 1.0
    jitter: bool = True
    deadline: float | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise InvalidInputError("attempts must be at least 1")
        if self.backoff < 0 or self.max_backoff < 0:
            raise InvalidInputError("backoff values must be 0 or more")
        if self.deadline is not None and self.deadline <= 0:
            raise InvalidInputError("deadline must be positive (seconds)")

    @classmethod
    def immediate(cls, attempts: int) -> ConflictRetry:
        """Retry at once, without waiting, up to ``attempts`` writes."""
        return cls(attempts=attempts, backoff=0.0, max_backoff=0.0, jitter=False)

    @classmethod
    def never(cls) -> ConflictRetry:
        """One attempt: a conflict is raised as it comes."""
        return cls(attempts=1)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        return backoff_delay(retry, self.backoff, self.max_backoff, jitter=self.jitter)
