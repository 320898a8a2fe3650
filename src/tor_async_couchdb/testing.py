"""Pytest fixtures that give tests CouchDB servers: embedded ones, or those of ``COUCHDB_URL``.

A pytest plugin, loaded by pytest by itself once ``tor-async-couchdb[testing]`` is installed
(its ``pytest11`` entry point); ``-p no:tor_async_couchdb.testing`` turns it off. See
``docs/testing.md`` for using it in a service's own tests.

- ``couch_server`` (session): one server for the whole run. With ``COUCHDB_URL`` set (URLs with
  admin credentials, e.g. ``http://admin:secret@127.0.0.1:5984``) it is the first server named
  there; otherwise an embedded server started for the session and stopped (files deleted) at
  its end.
- ``extra_servers`` (function): a factory of more servers, for tests that need several
  (replication between "data centers"). Without ``COUCHDB_URL`` each call starts an embedded
  server, stopped after the test, pass or fail. With it, each call hands out the next of the
  other servers named there (``COUCHDB_URL=URL1,URL2,URL3``: two extra), and the test is
  skipped, saying so, if it asks for more than were named. A server of ``COUCHDB_URL`` is never
  stopped: :attr:`CouchServer.is_external` says which is which.

Tests marked ``embedded_only`` are skipped when ``COUCHDB_URL`` is set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

import pytest

from ._exceptions import InvalidInputError
from .devserver import DevServer

__all__ = [
    "CouchServer",
    "couch_server",
    "extra_servers",
    "server_from_url",
    "servers_from_env",
]

_ENV = "COUCHDB_URL"


@dataclass(frozen=True, slots=True)
class CouchServer:
    """Where a test's CouchDB is: ``url`` without credentials, and the admin's ``auth``.

    ``embedded`` is the :class:`~tor_async_couchdb.devserver.DevServer` the plugin started (and
    will stop), or ``None`` for a server of ``COUCHDB_URL``, which no test may stop.
    """

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
        """Whether this is an embedded server the plugin started."""
        return self.embedded is not None

    @property
    def is_external(self) -> bool:
        """Whether this is a server of ``COUCHDB_URL``: not started, nor to be stopped, here."""
        return self.embedded is None

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


def servers_from_env(value: str | None) -> list[CouchServer]:
    """The servers a ``COUCHDB_URL`` value names: comma-separated URLs, each independent.

    A cluster is one server: name one of its nodes (or its load balancer). A comma inside a
    password is written ``%2C``. Empty or unset: no external servers. Raises
    :class:`InvalidInputError` for a URL :func:`server_from_url` rejects.
    """
    if not value:
        return []
    return [server_from_url(part.strip()) for part in value.split(",") if part.strip()]


def _embedded(server: DevServer) -> CouchServer:
    return CouchServer(url=server.url, user=server.user, password=server.password, embedded=server)


def _install_progress(config: pytest.Config) -> Callable[[str], None] | None:
    """Where the first start's install reports: the terminal, past pytest's output capture.

    Installing the embedded server takes up to a minute, once; a run that sits silent for that
    long looks hung. ``None`` (DevServer's default, stderr) when there is no terminal reporter.
    """
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return None

    def report(line: str) -> None:
        # As pytest's live logging does: the terminal is captured too while a fixture runs.
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"tor-async-couchdb: {line}")

    return report


@pytest.fixture(scope="session")
def couch_server(pytestconfig: pytest.Config) -> Iterator[CouchServer]:
    """The session's CouchDB: the first server of ``COUCHDB_URL`` if set, else an embedded one."""
    external = servers_from_env(os.environ.get(_ENV))
    if external:
        yield external[0]
        return
    # The server's watchdog ends it if the test run is killed.
    with DevServer(progress=_install_progress(pytestconfig)) as server:
        yield _embedded(server)


@pytest.fixture
def extra_servers(pytestconfig: pytest.Config) -> Iterator[Callable[..., CouchServer]]:
    """A factory of extra servers: ``extra_servers(in_memory=False) -> CouchServer``.

    Embedded servers it starts are stopped after the test; ``COUCHDB_URL``'s are handed out in
    order (``in_memory`` does not apply to them), skipping the test when there are too few.
    """
    external = servers_from_env(os.environ.get(_ENV))
    if external:
        yield _hand_out(external[1:])
        return
    started: list[DevServer] = []

    def start(*, in_memory: bool = False) -> CouchServer:
        server = DevServer(in_memory=in_memory, progress=_install_progress(pytestconfig))
        started.append(server)
        server.start_sync()
        return _embedded(server)

    try:
        yield start
    finally:
        for server in started:
            server.stop_sync()


def _hand_out(others: list[CouchServer]) -> Callable[..., CouchServer]:
    remaining = iter(others)
    handed = 0

    def next_server(*, in_memory: bool = False) -> CouchServer:
        nonlocal handed
        server = next(remaining, None)
        if server is None:
            pytest.skip(
                f"needs more than {handed} extra server(s); {_ENV} names {len(others) + 1} "
                f"server(s), the first of which is couch_server"
            )
        handed += 1
        return server

    return next_server


def pytest_configure(config: pytest.Config) -> None:
    """Register this plugin's marker."""
    config.addinivalue_line(
        "markers", "embedded_only: relies on the embedded server (skipped against COUCHDB_URL)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``embedded_only`` tests when ``COUCHDB_URL`` names external servers."""
    if not os.environ.get(_ENV):
        return
    skip = pytest.mark.skip(reason=f"relies on the embedded server; {_ENV} is set")
    for item in items:
        if item.get_closest_marker("embedded_only"):
            item.add_marker(skip)
