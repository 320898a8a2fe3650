"""Document signatures: HMAC-SHA256 (default) or Ed25519 over an RFC 8785 canonical form.

The signature lives in the document's ``"$signature"`` member (CouchDB reserves only names
starting with ``_``, and no model field can start with ``$``)::

    "$signature": {"v": 1, "alg": "HS256", "kid": "<key id>", "sig": "<base64url>",
                   "att": {"<attachment name>": "<sha256 hex>"}}     # "att" only if any

What is signed: the RFC 8785 (JCS) bytes of ::

    {"v": 1, "alg": <alg>, "kid": <kid>, "att": <att or {}>, "doc": <the document>}

where the document is every member except ``_rev``, ``_revisions``, ``_conflicts``,
``_deleted_conflicts``, ``_revs_info``, ``_local_seq`` (metadata CouchDB changes or adds on read)
and the signature itself; ``_id``, ``type``, ``_deleted`` and everything else are covered, and
``_attachments`` is replaced by ``{name: {"content_type", "digest", "length"}}`` per attachment.
``alg`` and ``kid`` are signed, so relabelling a signature with another key id fails.

Attachments: CouchDB's own ``digest`` is an MD5 (``md5-<base64>``), which the server recomputes
from the content, so a stub read back (``stub: true``) is checked against the signature on every
read without downloading anything. MD5 resists second preimages but not collisions, so an
attachment written *inline* through the codec is also recorded by SHA-256 in ``att`` (signed),
checked whenever the content itself is read (:meth:`SignatureCodec.verify_attachment`, or an
inline ``data`` member). A stub at signing time (an attachment written earlier and not loaded)
keeps the SHA-256 the caller passes in ``attachment_sha256`` (rotation carries it over from the
verified old signature); without one it is covered by its MD5 digest, length and type only.

Numbers: JCS refuses integers beyond 2^53 (JavaScript-based servers and readers would round
them, and the signature would fail after a round trip): such a document is refused at write
time with :class:`UnsignableDocument`. A large *float* that a server writes back as an integer
(``1e20`` as ``100000000000000000000``) is read as the float it was. ``1.0`` and ``1``, ``-0.0``
and ``0`` canonicalize alike (as the server may rewrite them); strings are never normalized
(NFC and NFD are different documents).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Final

from rfc8785 import CanonicalizationError, IntegerDomainError

from .._exceptions import (
    InvalidInputError,
    MalformedEnvelope,
    TamperedDocument,
    UnsignableDocument,
    UnsignedDocument,
)
from ._attachments import attachment_entries, attachment_hashes, check_inline_contents
from ._encoding import b64decode, b64encode, canonical
from ._hashing import PENDING_KEY
from ._protocol import DocumentContext
from ._signers import HmacSigner, Signer

__all__ = [
    "EXCLUDED_MEMBERS",
    "SIGNATURE_FIELD",
    "SignatureCodec",
    "signing_input",
]

SIGNATURE_FIELD: Final = "$signature"
SIGNATURE_VERSION: Final = 1
EXCLUDED_MEMBERS: Final = frozenset(
    {"_rev", "_revisions", "_conflicts", "_deleted_conflicts", "_revs_info", "_local_seq"}
)
_MAX_SAFE: Final = 2**53 - 1
_RARELY_STORED: Final = EXCLUDED_MEMBERS - {"_rev"}
_ABSENT: Final = object()
# How an unhashed secret's member appears in the canonical bytes (a key needs no escaping).
_PENDING_MEMBER: Final = f'"{PENDING_KEY}":'.encode()
_ENVELOPE_REQUIRED: Final = frozenset({"v", "alg", "kid", "sig"})
_ENVELOPE_ALLOWED: Final = _ENVELOPE_REQUIRED | {"att"}


def signing_input(
    doc: Mapping[str, Any],
    *,
    algorithm: str,
    key_id: str,
    attachment_sha256: Mapping[str, str],
    field: str = SIGNATURE_FIELD,
) -> bytes:
    """The bytes a signature covers (see the module). Raises ``CanonicalizationError`` and
    :class:`MalformedEnvelope` (an attachment that is neither inline nor a stub)."""
    body = dict(doc)  # (a copy, then pops: twice as fast as a filtering comprehension)
    for member in EXCLUDED_MEMBERS:
        body.pop(member, None)
    body.pop(field, None)
    if "_attachments" in body:
        body["_attachments"] = attachment_entries(_doc_id(doc), body["_attachments"])
    att = attachment_sha256 if type(attachment_sha256) is dict else dict(attachment_sha256)
    return canonical(
        {"v": SIGNATURE_VERSION, "alg": algorithm, "kid": key_id, "att": att, "doc": body}
    )


class SignatureCodec:
    """The document codec that signs every write and verifies every read.

    ``accept_unsigned=True`` is the adoption mode for databases that existed before the
    library: an unsigned document is read as it is (and signed at its next write). Off by
    default: an unsigned document (an unsigned deletion included) is :class:`UnsignedDocument`.
    """

    __slots__ = ("accept_unsigned", "field", "signer")
    # :meth:`decode` returns a new dict and leaves the one it is given as it is: the mapper
    # hands it the stored document without a defensive copy of its own.
    decodes_to_copy: ClassVar[bool] = True

    def __init__(
        self, signer: Signer, *, field: str = SIGNATURE_FIELD, accept_unsigned: bool = False
    ) -> None:
        if not field or field.startswith("_"):
            raise InvalidInputError(f"the signature field must not start with '_': {field!r}")
        self.signer = signer
        self.field = field
        self.accept_unsigned = accept_unsigned

    def __repr__(self) -> str:
        return f"SignatureCodec({self.signer!r}, accept_unsigned={self.accept_unsigned})"

    def encode(self, doc: dict[str, Any], context: DocumentContext) -> dict[str, Any]:
        """``doc`` itself, signed: the mapper hands over the document it made for this write,
        so it is changed in place rather than copied (:meth:`sign` copies). Raises
        :class:`UnsignableDocument`."""
        _check_context(doc, context)
        # The mapper's own document, made for this write: signed as it is, not copied.
        if self.field in doc:
            del doc[self.field]
        return self._signed(doc, {})

    def decode(self, doc: dict[str, Any], context: DocumentContext) -> dict[str, Any]:
        """The document without its signature, once verified. Raises
        :class:`TamperedDocument` (and its :class:`UnsignedDocument`), :class:`MalformedEnvelope`,
        :class:`UnknownKeyError`, :class:`RetiredKeyError`."""
        if doc.get("_id") != context.doc_id:
            raise _tampered(context.doc_id, "is not the document asked for (another _id)")
        return self.verified(doc)[0]

    def sign(
        self, doc: Mapping[str, Any], *, attachment_sha256: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """A copy of ``doc`` signed under the active key (an old signature replaced).

        Inline attachments are recorded by SHA-256; stubs keep the ``attachment_sha256`` given
        for them. Raises :class:`UnsignableDocument`."""
        unsigned = dict(doc)
        unsigned.pop(self.field, None)
        return self._signed(unsigned, attachment_sha256 or {})

    def _signed(self, unsigned: dict[str, Any], known: Mapping[str, str]) -> dict[str, Any]:
        # ``unsigned``: the caller's own dict, without a signature; signed in place.
        doc_id = _doc_id(unsigned)
        att = (
            attachment_hashes(doc_id, unsigned["_attachments"], known)
            if "_attachments" in unsigned
            else {}
        )
        algorithm = self.signer.algorithm
        key_id, message = self._signing_message(unsigned, att, algorithm, doc_id)
        if _PENDING_MEMBER in message:  # (one search of the bytes spares a look at each field)
            _refuse_pending_secrets(doc_id, unsigned)
        envelope: dict[str, Any] = {"v": SIGNATURE_VERSION, "alg": algorithm, "kid": key_id}
        envelope["sig"] = b64encode(self.signer.sign(message))
        if att:
            envelope["att"] = att
        unsigned[self.field] = envelope
        return unsigned

    def verify(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """``doc`` without its signature, once the signature verifies (see :meth:`decode`)."""
        return self.verified(doc)[0]

    def verified(self, doc: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """``doc`` without its signature and the signed SHA-256 of its attachments, once the
        signature verifies (see :meth:`decode`)."""
        doc_id = _doc_id(doc)
        envelope = doc.get(self.field)
        if envelope is None:
            if self.accept_unsigned:
                return dict(doc), {}
            what = "an unsigned deletion" if doc.get("_deleted") else "unsigned"
            raise UnsignedDocument(f"document {doc_id!r} is {what}", doc_id=doc_id)
        key_id, signature, att = self._parse(envelope, doc_id)
        algorithm = self.signer.algorithm
        if envelope["alg"] != algorithm:
            raise _tampered(doc_id, f"is signed with {envelope['alg']!r}, not the expected alg")
        unsigned = dict(doc)
        del unsigned[self.field]
        message = _read_message(unsigned, algorithm, key_id, att, doc_id)
        if not self._matches(key_id, message, signature, doc_id):
            raise _tampered(doc_id, "does not match its signature")
        if "_attachments" in unsigned:
            check_inline_contents(doc_id, unsigned["_attachments"], att)
        return unsigned, dict(att) if att else {}

    def _matches(self, key_id: str, message: bytes, signature: str, doc_id: str | None) -> bool:
        signer = self.signer
        if type(signer) is HmacSigner:
            # The expected HMAC encoded, against the stored text: the strict decode is only
            # needed to tell a badly encoded signature (malformed) from a wrong one (tampered).
            # Text equal to the canonical encoding of the right HMAC is that HMAC, so nothing
            # that failed before passes now.
            expected = signer.signature_text(key_id, message, doc_id)
            if hmac.compare_digest(expected, signature):
                return True
            if b64decode(signature) is None:
                raise _malformed(doc_id, "has a badly encoded key id or signature")
            return False
        decoded = b64decode(signature)
        if decoded is None:
            raise _malformed(doc_id, "has a badly encoded key id or signature")
        return signer.verify(key_id, message, decoded, doc_id)

    def key_id(self, doc: Mapping[str, Any]) -> str | None:
        """The key id of a document's signature (``None`` if unsigned), unverified."""
        envelope = doc.get(self.field)
        kid = envelope.get("kid") if isinstance(envelope, dict) else None
        return kid if isinstance(kid, str) else None

    def verify_attachment(self, doc: Mapping[str, Any], name: str, content: bytes) -> None:
        """Check an attachment's content against the verified signature of ``doc``. Raises
        :class:`TamperedDocument` (also when no SHA-256 was recorded for it)."""
        expected = self.verified(doc)[1].get(name)
        doc_id = _doc_id(doc)
        if expected is None or not hmac.compare_digest(
            expected, hashlib.sha256(content).hexdigest()
        ):
            raise _tampered(doc_id, f"attachment {name!r} is not the signed content")

    def _signing_message(
        self, doc: dict[str, Any], att: dict[str, str], algorithm: str, doc_id: str | None
    ) -> tuple[str, bytes]:
        key_id = self.signer.active_key_id  # (signed too: known before the message is built)
        try:
            message = _owned_input(doc, algorithm, key_id, att)
        except CanonicalizationError as exc:
            raise UnsignableDocument(
                f"document {doc_id!r}: {_unsafe_path(doc) or 'a value'} has no canonical JSON "
                f"form ({type(exc).__name__}): JSON readers would change it",
                doc_id=doc_id,
                field=_unsafe_path(doc),
            ) from None
        return key_id, message

    def _parse(self, envelope: object, doc_id: str | None) -> tuple[str, str, dict[str, str]]:
        if not isinstance(envelope, dict) or not (
            _ENVELOPE_REQUIRED <= envelope.keys() <= _ENVELOPE_ALLOWED
        ):
            raise _malformed(doc_id, "has missing or unknown members")
        version = envelope["v"]  # (type checked too: JSON's true equals 1 in Python)
        if type(version) is not int or version != SIGNATURE_VERSION:
            raise _malformed(doc_id, "has an unknown version")
        if not isinstance(envelope["alg"], str):
            raise _malformed(doc_id, "has an algorithm that is not a string")
        kid, signature = envelope["kid"], envelope["sig"]
        att = envelope.get("att", {})
        # (The signature's base64 is checked strictly where it does not match: _matches.)
        if type(kid) is not str or type(signature) is not str or not signature.isascii():
            raise _malformed(doc_id, "has a badly encoded key id or signature")
        if type(att) is not dict or (att and not all(type(v) is str for v in att.values())):
            raise _malformed(doc_id, "has a badly encoded attachment list")
        return kid, signature, att


def _owned_input(doc: dict[str, Any], algorithm: str, key_id: str, att: dict[str, str]) -> bytes:
    """:func:`signing_input` of a document without its signature that the caller owns, without
    copying it: ``_rev`` (which every stored document and update holds, and which is left out of
    the signature) is taken out for the time of the canonical form and put back (key order
    means nothing in JSON). Every read and write pays for this, so the usual case is a handful
    of steps; a document with attachments or other members to leave out goes the general way.
    Raises ``CanonicalizationError``."""
    if "_attachments" in doc or not _RARELY_STORED.isdisjoint(doc):
        return signing_input(doc, algorithm=algorithm, key_id=key_id, attachment_sha256=att)
    rev = doc.pop("_rev", _ABSENT)
    try:
        return canonical(
            {"v": SIGNATURE_VERSION, "alg": algorithm, "kid": key_id, "att": att, "doc": doc}
        )
    finally:
        if rev is not _ABSENT:
            doc["_rev"] = rev


def _read_message(
    doc: dict[str, Any], algorithm: str, key_id: str, att: dict[str, str], doc_id: str | None
) -> bytes:
    try:
        return _owned_input(doc, algorithm, key_id, att)
    except IntegerDomainError:
        # A large float the server wrote back as an integer (JavaScript prints 1e20 so):
        # read such integers as the floats they were, and try once more.
        pass
    except CanonicalizationError:
        raise _tampered(doc_id, "holds a value no signed document can hold") from None
    try:
        return signing_input(
            _as_written(doc), algorithm=algorithm, key_id=key_id, attachment_sha256=att
        )
    except CanonicalizationError:
        raise _tampered(doc_id, "holds an integer no signed document can hold") from None


def _as_written(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _as_written(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_written(v) for v in value]
    if type(value) is int and abs(value) > _MAX_SAFE:
        as_float = float(value)
        # Only if the float prints as this very integer (ECMAScript's form, which JCS uses).
        if canonical(as_float) == str(value).encode():
            return as_float
    return value


def _unsafe_path(value: Any, path: str = "") -> str | None:
    """Where the first integer beyond 2^53 (or non-JSON float) sits in ``value``."""
    if isinstance(value, dict):
        items: Iterable[tuple[object, Any]] = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        unsafe = (type(value) is int and abs(value) > _MAX_SAFE) or (
            isinstance(value, float) and not math.isfinite(value)
        )
        return path or "(document)" if unsafe else None
    for key, item in items:
        found = _unsafe_path(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def _refuse_pending_secrets(doc_id: str | None, doc: Mapping[str, Any]) -> None:
    for name, value in doc.items():
        if type(value) is dict and PENDING_KEY in value:
            raise UnsignableDocument(
                f"document {doc_id!r} field {name!r} holds a secret that was not hashed: the "
                "mapper must run the HashedCodec before signing",
                doc_id=doc_id,
                field=name,
            )


def _check_context(doc: Mapping[str, Any], context: DocumentContext) -> None:
    if doc.get("_id") != context.doc_id:
        raise UnsignableDocument(
            f"document {context.doc_id!r}: a document must have its final _id before signing",
            doc_id=context.doc_id,
        )


def _doc_id(doc: Mapping[str, Any]) -> str | None:
    doc_id = doc.get("_id")
    return doc_id if isinstance(doc_id, str) else None


def _tampered(doc_id: str | None, problem: str) -> TamperedDocument:
    return TamperedDocument(f"document {doc_id!r} {problem}", doc_id=doc_id)


def _malformed(doc_id: str | None, problem: str) -> MalformedEnvelope:
    return MalformedEnvelope(f"document {doc_id!r}: the signature {problem}", doc_id=doc_id)
