"""The one exception tree of tor-async-couchdb.

Every error this library raises on purpose derives from :class:`CouchError`::

    CouchError
    ├── TransportError            no usable HTTP answer arrived
    │   ├── ConnectError          the connection could not be opened (refused, DNS, TLS)
    │   ├── ConnectionLost        the connection broke while the request was under way
    │   ├── TransportTimeout      (also a builtin TimeoutError)
    │   │   ├── ConnectTimeout
    │   │   ├── ReadTimeout
    │   │   └── PoolTimeout       no pooled connection became free in time
    │   ├── ProtocolError         the answer was not valid HTTP, or not the JSON it should be
    │   └── IncompleteAnswer      truncated: a ConnectionLost and a ProtocolError at once
    ├── HTTPStatusError           the server answered with an error status
    │   ├── BadRequest            400
    │   ├── Unauthorized          401
    │   ├── Forbidden             403
    │   ├── NotFound              404
    │   ├── MethodNotAllowed      405
    │   ├── NotAcceptable         406
    │   ├── Conflict              409 (also one document's conflict in a bulk answer)
    │   │   └── WriteNotConfirmed a cluster took a write on too few copies, and it did not hold
    │   ├── PreconditionFailed    412
    │   ├── PayloadTooLarge       413
    │   ├── UnsupportedMediaType  415
    │   ├── TooManyRequests       429
    │   └── ServerError           5xx
    ├── InvalidInputError         rejected before any request (also a builtin ValueError)
    │   ├── InvalidNameError      a database or document name CouchDB would reject
    │   ├── NotJSONError          a value that cannot be encoded as JSON
    │   ├── UnknownIndexError     a model has no index of that name (also a KeyError)
    │   ├── ModelValidationError  a model's values (or a stored document's) fail its field types
    │   ├── WrongTypeError        a document's ``type`` is missing, bad, another model's or newer
    │   └── ConfigurationError    a client setting that cannot be used (a CA file, a missing codec)
    ├── ClientClosedError         the client was used after ``aclose()``
    ├── BulkWriteError            a bulk save failed part-way: what was saved, what is unknown
    ├── ModelDefinitionError      a model class declared wrongly (also a builtin TypeError)
    └── ProtectionError           hashing, encryption or signing refused a document
        ├── TamperedDocument      a stored document fails its signature or its ciphertexts
        │   ├── UnsignedDocument  no signature where one is required (or an unsigned deletion)
        │   ├── UnprotectedField  a plaintext where an encrypted or hashed value must be
        │   └── DecryptionFailed  a ciphertext does not authenticate for this doc, field and key
        ├── MalformedEnvelope     an encryption or signature envelope that cannot be parsed
        ├── KeyRingError          a key that is needed is not usable
        │   ├── MissingKeyError   no key ring, no active key, or no key material to sign with
        │   ├── UnknownKeyError   a key id the key ring does not know
        │   └── RetiredKeyError   a key id the key ring lists as retired
        └── UnsignableDocument    a document JCS cannot canonicalize (an integer beyond 2^53)

Protection errors name the document and field concerned (and a key *id* where one matters),
never key material or a plaintext: they are meant to be logged.

Transport errors and status errors are apart on purpose: the first say the request may or may not
have reached the server, the second that the server decided. Every error carries the method and
the *redacted* URL (no credentials, ever) of the request that failed, where there was one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "BadRequest",
    "BulkWriteError",
    "ClientClosedError",
    "ConfigurationError",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionLost",
    "Conflict",
    "DecryptionFailed",
    "CouchError",
    "Forbidden",
    "HTTPStatusError",
    "IncompleteAnswer",
    "InvalidInputError",
    "InvalidNameError",
    "KeyRingError",
    "MalformedEnvelope",
    "MethodNotAllowed",
    "MissingKeyError",
    "ModelDefinitionError",
    "ModelValidationError",
    "NotAcceptable",
    "NotFound",
    "NotJSONError",
    "PayloadTooLarge",
    "PoolTimeout",
    "PreconditionFailed",
    "ProtectionError",
    "ProtocolError",
    "ReadTimeout",
    "RetiredKeyError",
    "ServerError",
    "TamperedDocument",
    "TransportTimeout",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "UnknownIndexError",
    "UnknownKeyError",
    "UnprotectedField",
    "UnsignableDocument",
    "UnsignedDocument",
    "UnsupportedMediaType",
    "WriteNotConfirmed",
    "WrongTypeError",
    "status_error",
]


class CouchError(Exception):
    """Root of every error raised by tor-async-couchdb.

    ``method`` and ``url`` name the request that failed (``url`` never holds credentials);
    both are ``None`` for errors raised before a request was made.
    """

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.url = url

    def __str__(self) -> str:
        if self.method and self.url:
            return f"{self.message} ({self.method} {self.url})"
        return self.message


class TransportError(CouchError):
    """No usable HTTP answer arrived; the request may or may not have reached the server."""


class ConnectError(TransportError):
    """The connection could not be opened: refused, unreachable, name not resolved, TLS failed."""


class ConnectionLost(TransportError):
    """The connection closed or was reset while the request or its answer was under way.

    ``stale`` is True when a reused keep-alive connection broke before any byte of the answer
    arrived: the server most likely closed it as idle, before reading the request.
    """

    stale: bool = False


class TransportTimeout(TransportError, TimeoutError):
    """A time limit ran out. Also a builtin :class:`TimeoutError`."""


class ConnectTimeout(TransportTimeout):
    """Opening the connection took longer than the connect timeout."""


class ReadTimeout(TransportTimeout):
    """The answer (or the next part of a streamed answer) did not arrive in time."""


class PoolTimeout(TransportTimeout):
    """Every pooled connection stayed busy for longer than the pool timeout."""


class ProtocolError(TransportError):
    """The answer was not valid HTTP/1.1, was truncated, or was not the JSON it had to be."""


class IncompleteAnswer(ConnectionLost, ProtocolError):
    """The answer began, but the connection closed before its end: a truncated answer.

    Both a lost connection (retried where that is safe) and a protocol error (unusable).
    """


class HTTPStatusError(CouchError):
    """The server answered with an error status.

    ``error`` and ``reason`` are CouchDB's own fields from the answer body (``None`` if the body
    had none); ``doc_id`` names the document concerned, where there is one.
    """

    status: int = 0

    def __init__(
        self,
        message: str,
        *,
        status: int,
        method: str | None = None,
        url: str | None = None,
        error: str | None = None,
        reason: str | None = None,
        doc_id: str | None = None,
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.status = status
        self.error = error
        self.reason = reason
        self.doc_id = doc_id

    def __str__(self) -> str:
        detail = f"{self.status} {self.error or ''}".rstrip()
        if self.reason:
            detail += f": {self.reason}"
        where = f" {self.method} {self.url}" if self.method and self.url else ""
        doc = f" [doc {self.doc_id!r}]" if self.doc_id is not None else ""
        return f"{self.message} ({detail}){doc}{where}"


class BadRequest(HTTPStatusError):
    """400: the server found the request malformed."""


class Unauthorized(HTTPStatusError):
    """401: missing or wrong credentials."""


class Forbidden(HTTPStatusError):
    """403: the credentials are not allowed to do this."""


class NotFound(HTTPStatusError):
    """404: no such database, document, attachment or design document."""


class MethodNotAllowed(HTTPStatusError):
    """405: the resource does not support this method."""


class NotAcceptable(HTTPStatusError):
    """406: the server cannot answer in the requested form."""


class Conflict(HTTPStatusError):
    """409: the document was changed by someone else (its revision is not the latest)."""


class WriteNotConfirmed(Conflict):
    """A write a CouchDB cluster accepted (``202 Accepted``: fewer copies than its write
    quorum took it, or a concurrent write on other copies raced it) did not survive: another
    revision won, and this one was withdrawn. Nothing of it remains, so, like any conflict, the
    change can be made again on the current document (``update`` does, under its policy).
    ``status`` is the 202 of the write."""


class PreconditionFailed(HTTPStatusError):
    """412: for example the database to create already exists."""


class PayloadTooLarge(HTTPStatusError):
    """413: the document or request body is larger than the server accepts."""


class UnsupportedMediaType(HTTPStatusError):
    """415: the body's content type is not one the server accepts here."""


class TooManyRequests(HTTPStatusError):
    """429: the server asks the client to slow down (``retry_after`` in seconds, if given)."""

    retry_after: float | None = None


class ServerError(HTTPStatusError):
    """5xx: the server failed."""


class InvalidInputError(CouchError, ValueError):
    """The input was rejected before any request was made. Also a builtin :class:`ValueError`."""


class InvalidNameError(InvalidInputError):
    """A database, document or design-document name that CouchDB would reject."""


class UnknownIndexError(InvalidInputError, KeyError):
    """A model has no index (view) of that name. Also a builtin :class:`KeyError`."""


class NotJSONError(InvalidInputError):
    """A value that cannot be encoded as JSON (for example a set, bytes or NaN)."""


class ClientClosedError(CouchError, RuntimeError):
    """The client (or a handle of it) was used after :meth:`CouchDB.aclose`."""


_BY_STATUS: dict[int, type[HTTPStatusError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    406: NotAcceptable,
    409: Conflict,
    412: PreconditionFailed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    429: TooManyRequests,
}


def status_error(
    status: int,
    *,
    method: str | None = None,
    url: str | None = None,
    error: str | None = None,
    reason: str | None = None,
    doc_id: str | None = None,
) -> HTTPStatusError:
    """Build the :class:`HTTPStatusError` subclass that fits ``status``."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else HTTPStatusError
    return cls(
        f"CouchDB answered {status}",
        status=status,
        method=method,
        url=url,
        error=error,
        reason=reason,
        doc_id=doc_id,
    )


class ModelValidationError(InvalidInputError):
    """A model's values, or a stored document read as a model, do not fit the model's fields.

    ``model`` names the model class, ``doc_id`` the document (``None`` before it has one) and
    ``errors`` holds one ``(field path, message)`` pair per failing value, e.g.
    ``("tags.2", "Input should be a valid string")``; ``fields`` lists the failing top-level
    fields. The pydantic ``ValidationError``, where there was one, is the ``__cause__``.
    """

    def __init__(
        self,
        message: str,
        *,
        model: str,
        doc_id: str | None = None,
        errors: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.model = model
        self.doc_id = doc_id
        self.errors = errors

    @property
    def fields(self) -> tuple[str, ...]:
        """The failing top-level field names, in order, without repeats."""
        return tuple(dict.fromkeys(path.split(".", 1)[0] for path, _ in self.errors))


class WrongTypeError(InvalidInputError):
    """A document cannot be read as the model asked for.

    Its ``type`` is missing or malformed, names another model, or is a newer version than the
    model knows (a document is never downgraded). ``found`` is the ``type`` value as found (any
    JSON value, ``None`` if missing), ``expected`` the type string the reader wanted (``None``
    when any of several models would do) and ``doc_id`` the document's id.
    """

    def __init__(
        self,
        message: str,
        *,
        doc_id: str | None = None,
        found: object = None,
        expected: str | None = None,
    ) -> None:
        super().__init__(message)
        self.doc_id = doc_id
        self.found = found
        self.expected = expected


class ModelDefinitionError(CouchError, TypeError):
    """A model class (or a set of models) is declared wrongly; raised when the class is created.

    ``model`` names the offending class. Also a builtin :class:`TypeError`.
    """

    def __init__(self, message: str, *, model: str) -> None:
        super().__init__(message)
        self.model = model


class ProtectionError(CouchError):
    """Hashing, encryption or signing refused a document (see the subclasses).

    ``doc_id`` names the document and ``field`` the field concerned (``None`` for the whole
    document); ``key_id`` the key id involved, where one is. Messages never hold key material
    or a plaintext.
    """

    def __init__(
        self,
        message: str,
        *,
        doc_id: str | None = None,
        field: str | None = None,
        key_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.doc_id = doc_id
        self.field = field
        self.key_id = key_id


class TamperedDocument(ProtectionError):
    """A stored document is not what the application tier wrote: its signature is missing or
    does not verify, or one of its ciphertexts does not authenticate. Never returned silently."""


class UnsignedDocument(TamperedDocument):
    """A document without a signature where one is required (an unsigned deletion included)."""


class UnprotectedField(TamperedDocument):
    """A field that must hold a ciphertext or a hash holds something else (e.g. a plaintext)."""


class DecryptionFailed(TamperedDocument):
    """A ciphertext does not authenticate under its associated data: copied from another
    document or field, relabelled with another key id, edited, or the key's secret is wrong."""


class MalformedEnvelope(ProtectionError):
    """An encryption or signature envelope (or its base64, nonce, tag) that cannot be parsed."""


class KeyRingError(ProtectionError):
    """A key that an operation needs is not usable."""


class MissingKeyError(KeyRingError):
    """No key ring was configured, it has no active key, or it holds no key material to sign."""


class UnknownKeyError(KeyRingError):
    """A document names a key id that the key ring does not know."""


class RetiredKeyError(KeyRingError):
    """A document names a key id that the key ring lists as retired: re-encrypt (rotate) the
    documents before retiring a key, or restore the key as accepted for reading."""


class UnsignableDocument(ProtectionError, InvalidInputError):
    """A document the signature's canonical form (RFC 8785 JCS) cannot hold, e.g. an integer
    beyond 2^53 that JSON readers in other languages would round. Raised before any write.
    Also an :class:`InvalidInputError` (a builtin :class:`ValueError`)."""


class ConfigurationError(InvalidInputError):
    """A client setting that cannot be used, named in the message: a CA file or client
    certificate (or key) that is missing, unreadable or not a PEM certificate, raised when the
    client is made; or a model used through a client or database handle that has no codec for
    a marker on one of its fields (``Encrypted()``, ``Hashed()``: the message names the model,
    the field and the marker), raised at the model's first use there. Both before any request.
    Also an :class:`InvalidInputError` (a ``ValueError``)."""


class BulkWriteError(CouchError):
    """A bulk save (``save_many``) whose request failed as a whole part-way (the server died,
    the connection broke): what is known of each model, with the transport (or status) error
    as ``__cause__``.

    - ``results``: the :class:`SaveResult` of every model of the chunks whose answer arrived,
      in order: saved (and, on a cluster, confirmed as for ``save``) or rejected (a
      :class:`Conflict`...), as ``save_many`` would have returned them;
    - ``unknown``: the models of the chunk whose answer was lost: written, partly written or
      not written at all; each carries the id it was sent with;
    - ``unsent``: the models of the later chunks, never sent (so not written).

    Finishing the job is ``save_many(error.unknown + error.unsent)``, and it cannot make
    duplicates: the ids were made by the client (time-ordered, :func:`new_id`) and are kept,
    so a model that was written after all comes back as a :class:`Conflict` result (a second
    create of an existing id is a 409), which ``get`` can then read back.
    """

    def __init__(
        self,
        message: str,
        *,
        results: Sequence[Any],
        unknown: Sequence[Any],
        unsent: Sequence[Any],
    ) -> None:
        super().__init__(message)
        self.results = list(results)
        self.unknown = list(unknown)
        self.unsent = list(unsent)
