"""Shared fixtures: clients and databases here; the servers come from the library's pytest plugin
(``tor_async_couchdb.testing``), which pytest loads through its entry point."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

import tor_async_couchdb as tac

if TYPE_CHECKING:  # loaded by pytest as a plugin; importing it first would skip its rewrite
    from tor_async_couchdb.testing import CouchServer

_names = itertools.count()


def unique_db_name(prefix: str = "test") -> str:
    """A database name no other test (or test run against a shared server) uses."""
    return f"{prefix}_{os.getpid()}_{next(_names)}"


@pytest.fixture
async def couch(couch_server: CouchServer) -> AsyncIterator[tac.CouchDB]:
    """A client of the session's server, closed after the test."""
    async with tac.CouchDB(couch_server.url, auth=couch_server.auth) as client:
        yield client


@pytest.fixture
async def db(couch: tac.CouchDB) -> AsyncIterator[tac.Database]:
    """A new, empty database, deleted after the test."""
    database = couch.database(unique_db_name())
    await database.create()
    try:
        yield database
    finally:
        await database.delete_database(missing_ok=True)
