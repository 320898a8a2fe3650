"""tor-async-couchdb: an asyncio-native CouchDB client and object-document mapper.

Everything public is importable from here; the modules behind it are private (``_name``), except
:mod:`tor_async_couchdb.devserver`, the embedded server for development and tests.
"""

from ._exceptions import (
    BadRequest,
    ClientClosedError,
    Conflict,
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    CouchError,
    Forbidden,
    HTTPStatusError,
    InvalidInputError,
    InvalidNameError,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    NotJSONError,
    PayloadTooLarge,
    PoolTimeout,
    PreconditionFailed,
    ProtocolError,
    ReadTimeout,
    ServerError,
    Timeout,
    TooManyRequests,
    TransportError,
    Unauthorized,
    UnsupportedMediaType,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "BadRequest",
    "ClientClosedError",
    "Conflict",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionLost",
    "CouchError",
    "Forbidden",
    "HTTPStatusError",
    "InvalidInputError",
    "InvalidNameError",
    "MethodNotAllowed",
    "NotAcceptable",
    "NotFound",
    "NotJSONError",
    "PayloadTooLarge",
    "PoolTimeout",
    "PreconditionFailed",
    "ProtocolError",
    "ReadTimeout",
    "ServerError",
    "Timeout",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "UnsupportedMediaType",
    "__version__",
]
