"""The raw CouchDB layer: the CouchDB 3 HTTP API in plain JSON data, free of models.

It never imports pydantic (a CI contract checks it); the store extends its :class:`CouchDB`
and :class:`Database` with models.
"""

from ._bulk import BulkResult
from ._database import Database
from ._engine import ClientStats, Engine, InsecureTLSWarning, RequestRecord
from ._server import CouchDB

__all__ = [
    "BulkResult",
    "ClientStats",
    "CouchDB",
    "Database",
    "Engine",
    "InsecureTLSWarning",
    "RequestRecord",
]
