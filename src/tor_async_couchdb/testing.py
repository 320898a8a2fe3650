"""Pytest fixtures that give tests a CouchDB server: the embedded one, or ``COUCHDB_URL``.

Enable them in a ``conftest.py`` with ``pytest_plugins = ["tor_async_couchdb.testing"]``.

- ``couch_server`` (session): one server for the whole run. With ``COUCHDB_URL`` set (a URL with
  credentials, e.g. ``http://admin:secret@127.0.0.1:5984``) it is that external CouchDB;
  otherwise an embedded server started for the session and stopped (files deleted) at its end.
- ``extra_servers`` (function): a factory starting more embedded servers, for tests that need
  several (replication between "data centers"); stopped after the test, pass or fail. It skips
  the test when ``COUCHDB_URL`` is set, since an external setup offers one server.

Tests marked ``embedded_only`` are skipped against an external server.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

import pytest

from ._exceptions import InvalidInputError
from .devserver import DevServer

__all__ = ["CouchServer", "couch_server", "extra_servers", "server_from_url"]

_ENV = "COUCHDB_URL"


@dataclass(frozen=True, slots=True)
class CouchServer:
    """Where a test's CouchDB is: ``url`` without credentials, and the admin's ``auth``."""

    url: str
    user: str
    password: str
    embedded: DevServer | None = None

    @property
    def auth(self) -> tuple[str, str]:
        """The admin's ``(user, password)``."""
        return (self.user, self.password)

    @property
    def is_embedded(self) -> bool:
        """Whether this is the embedded server (``False`` for ``COUCHDB_URL``)."""
        return self.embedded is not None

    def __repr__(self) -> str:  # never show the password
        return f"CouchServer(url={self.url!r}, user={self.user!r}, embedded={self.is_embedded})"


def server_from_url(url: str) -> CouchServer:
    """Split a URL with credentials into a :class:`CouchServer`.

    Raises :class:`InvalidInputError` if the URL is not http(s) or has no credentials.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"{_ENV} must be an http(s) URL, got scheme {parts.scheme!r}")
    if parts.username is None or parts.password is None:
        raise InvalidInputError(f"{_ENV} must carry admin credentials: http://user:pass@host:port")
    netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    bare = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return CouchServer(url=bare, user=unquote(parts.username), password=unquote(parts.password))


def _embedded(server: DevServer) -> CouchServer:
    return CouchServer(url=server.url, user=server.user, password=server.password, embedded=server)


@pytest.fixture(scope="session")
def couch_server() -> Iterator[CouchServer]:
    """The session's CouchDB: ``COUCHDB_URL`` if set, else an embedded server."""
    url = os.environ.get(_ENV)
    if url:
        yield server_from_url(url)
        return
    # Started from the main thread, so the kernel ends it even if the test run is killed.
    with DevServer() as server:
        yield _embedded(server)


@pytest.fixture
def extra_servers() -> Iterator[Callable[..., CouchServer]]:
    """A factory of extra embedded servers: ``start(in_memory=False) -> CouchServer``."""
    if os.environ.get(_ENV):
        pytest.skip(f"needs several servers; {_ENV} names a single external one")
    started: list[DevServer] = []

    def start(*, in_memory: bool = False) -> CouchServer:
        server = DevServer(in_memory=in_memory)
        started.append(server)
        server.start_sync()
        return _embedded(server)

    try:
        yield start
    finally:
        for server in started:
            server.stop_sync()


def pytest_configure(config: pytest.Config) -> None:
    """Register this plugin's marker."""
    config.addinivalue_line(
        "markers", "embedded_only: relies on the embedded server (skipped against COUCHDB_URL)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``embedded_only`` tests when ``COUCHDB_URL`` names an external server."""
    if not os.environ.get(_ENV):
        return
    skip = pytest.mark.skip(reason=f"relies on the embedded server; {_ENV} is set")
    for item in items:
        if item.get_closest_marker("embedded_only"):
            item.add_marker(skip)
