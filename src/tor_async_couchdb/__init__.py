"""tor-async-couchdb: an asyncio-native CouchDB client and object-document mapper.

Everything public is importable from here; the modules behind it are private (``_name``), except
:mod:`tor_async_couchdb.devserver`, the embedded server for development and tests.
"""

import logging

from ._client import ClientStats, CouchDB, InsecureTLSWarning, RequestRecord
from ._config import BasicAuth, BearerAuth, RetryPolicy, SessionAuth
from ._database import BulkResult, Database
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
    IncompleteAnswer,
    InvalidInputError,
    InvalidNameError,
    MethodNotAllowed,
    ModelDefinitionError,
    ModelValidationError,
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
    UnknownIndexError,
    UnsupportedMediaType,
    WrongTypeError,
)
from ._ids import IdGenerator, check_doc_id, id_timestamp, new_id
from ._model import (
    FieldMarker,
    Index,
    Indexed,
    Model,
    ModelInfo,
    ModelSet,
    UpgradeStep,
    format_type,
    parse_type,
    upgrade,
)
from ._store import ConflictRetry, MigrationProgress, SaveResult, stored_value
from ._transport import Limits, Timeouts
from ._views import design_doc, design_docs, view_location

__version__ = "0.1.0.dev0"

# A library logs; the application decides where records go (nothing is printed by default).
logging.getLogger("tor_async_couchdb").addHandler(logging.NullHandler())

__all__ = [
    "BadRequest",
    "BasicAuth",
    "BearerAuth",
    "BulkResult",
    "ClientClosedError",
    "ClientStats",
    "Conflict",
    "ConflictRetry",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionLost",
    "CouchDB",
    "CouchError",
    "Database",
    "FieldMarker",
    "Forbidden",
    "HTTPStatusError",
    "IdGenerator",
    "IncompleteAnswer",
    "Index",
    "Indexed",
    "InsecureTLSWarning",
    "InvalidInputError",
    "InvalidNameError",
    "Limits",
    "MethodNotAllowed",
    "MigrationProgress",
    "Model",
    "ModelDefinitionError",
    "ModelInfo",
    "ModelSet",
    "ModelValidationError",
    "NotAcceptable",
    "NotFound",
    "NotJSONError",
    "PayloadTooLarge",
    "PoolTimeout",
    "PreconditionFailed",
    "ProtocolError",
    "ReadTimeout",
    "RequestRecord",
    "RetryPolicy",
    "SaveResult",
    "ServerError",
    "SessionAuth",
    "Timeout",
    "Timeouts",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "UnknownIndexError",
    "UnsupportedMediaType",
    "UpgradeStep",
    "WrongTypeError",
    "__version__",
    "check_doc_id",
    "design_doc",
    "design_docs",
    "format_type",
    "id_timestamp",
    "new_id",
    "parse_type",
    "stored_value",
    "upgrade",
    "view_location",
]
