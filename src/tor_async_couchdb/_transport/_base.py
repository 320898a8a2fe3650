"""The transport interface: what the CouchDB layer needs from HTTP, and nothing more.

A transport is bound to one origin (scheme, host, port) and sends HTTP/1.1 requests to it. It
knows nothing of CouchDB, JSON, authentication or retries: those live one layer up, so that a
transport can be swapped (or faked in unit tests) without touching them.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from .._config import Limits, Timeouts

__all__ = ["Limits", "Response", "StreamResponse", "Timeouts", "Transport"]  # (re-exported)


@dataclass(frozen=True, slots=True)
class Response:
    """A complete answer: status, headers (names lower-cased) and the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class StreamResponse(abc.ABC):
    """An answer whose body is read piece by piece (``_changes`` feeds, large views)."""

    status: int
    headers: Mapping[str, str]

    @abc.abstractmethod
    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Yield the body's bytes as they arrive (dechunked); each wait is bounded by the
        stream's read timeout, which raises :class:`ReadTimeout`."""

    @abc.abstractmethod
    def aiter_lines(self) -> AsyncIterator[bytes]:
        """Yield the body line by line (without the line end), as the lines arrive."""

    @abc.abstractmethod
    async def read(self) -> bytes:
        """Read the rest of the body."""


class Transport(abc.ABC):
    """Sends HTTP/1.1 requests to one origin over pooled keep-alive connections."""

    @abc.abstractmethod
    async def request(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None = None,
    ) -> Response:
        """Send one request and return the whole answer.

        ``target`` is the already percent-encoded path with its query (``/db/doc%2F1?rev=1-a``).
        Raises :class:`TransportError` subclasses only; an HTTP error status is an answer.
        """

    @abc.abstractmethod
    def stream(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes | None = None,
        *,
        timeouts: Timeouts | None = None,
    ) -> AbstractAsyncContextManager[StreamResponse]:
        """Send one request; the context holds the connection until the body is read or the
        context exits (a connection left with unread body is closed, not reused).

        ``timeouts`` replaces the transport's own for this request (a long feed sets ``read``).
        """

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close every connection. Idempotent."""
