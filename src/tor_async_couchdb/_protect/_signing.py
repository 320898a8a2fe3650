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

import base64
import binascii
import hashlib
import hmac
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Final, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from rfc8785 import CanonicalizationError, IntegerDomainError

from .._exceptions import (
    InvalidInputError,
    KeyRingError,
    MalformedEnvelope,
    MissingKeyError,
    RetiredKeyError,
    TamperedDocument,
    UnknownKeyError,
    UnsignableDocument,
    UnsignedDocument,
)
from ._derive import DOCUMENT_SIGNATURE, ED25519_SIGNING_KEY, DerivedKeys, derive_key
from ._encoding import b64decode, b64encode, canonical
from ._hashing import PENDING_KEY
from ._keys import Key, KeyRing
from ._protocol import DocumentContext

__all__ = [
    "EXCLUDED_MEMBERS",
    "SIGNATURE_FIELD",
    "Ed25519Signer",
    "HmacSigner",
    "SignatureCodec",
    "Signer",
    "signing_input",
]

SIGNATURE_FIELD: Final = "$signature"
SIGNATURE_VERSION: Final = 1
EXCLUDED_MEMBERS: Final = frozenset(
    {"_rev", "_revisions", "_conflicts", "_deleted_conflicts", "_revs_info", "_local_seq"}
)
_MAX_SAFE: Final = 2**53 - 1
_ENVELOPE_REQUIRED: Final = frozenset({"v", "alg", "kid", "sig"})
_ENVELOPE_ALLOWED: Final = _ENVELOPE_REQUIRED | {"att"}


class Signer(Protocol):
    """Signs with its active key and verifies with any key it accepts."""

    @property
    def algorithm(self) -> str:
        """The JOSE name written into the envelope (``HS256``, ``EdDSA``)."""
        ...

    @property
    def active_key_id(self) -> str:
        """The id of the key :meth:`sign` uses (signed too). Raises :class:`MissingKeyError`."""
        ...

    def sign(self, message: bytes) -> bytes:
        """The signature of ``message`` under the active key."""
        ...

    def verify(self, key_id: str, message: bytes, signature: bytes, doc_id: str | None) -> bool:
        """Whether ``signature`` is valid. Raises :class:`UnknownKeyError`,
        :class:`RetiredKeyError`."""
        ...


class HmacSigner:
    """HMAC-SHA256 under a key derived from the key ring (purpose ``"document-signature"``).

    Anyone who can verify can also sign: use :class:`Ed25519Signer` where readers must not.
    """

    __slots__ = ("_derived", "_macs", "keyring")
    algorithm: ClassVar[str] = "HS256"

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring
        self._derived = DerivedKeys()
        # A keyed HMAC per key, copied for each message: setting the key up costs a third.
        self._macs: dict[tuple[str, bytes], hmac.HMAC] = {}

    def __repr__(self) -> str:
        return f"HmacSigner({self.keyring!r})"

    @property
    def active_key_id(self) -> str:
        """The key ring's active key id."""
        return self.keyring.active.key_id

    def sign(self, message: bytes) -> bytes:
        """HMAC-SHA256 of ``message`` under the active key."""
        return self._mac(self.keyring.active, message)

    def verify(self, key_id: str, message: bytes, signature: bytes, doc_id: str | None) -> bool:
        """Constant-time check of an HMAC. Raises :class:`UnknownKeyError`,
        :class:`RetiredKeyError`."""
        key = self.keyring.get(key_id, doc_id=doc_id)
        return hmac.compare_digest(self._mac(key, message), signature)

    def _mac(self, key: Key, message: bytes) -> bytes:
        keyed = self._macs.get((key.key_id, key.secret))
        if keyed is None:
            mac_key = self._derived.get(key, DOCUMENT_SIGNATURE)
            keyed = self._macs[key.key_id, key.secret] = hmac.new(mac_key, None, hashlib.sha256)
        mac = keyed.copy()
        mac.update(message)
        return mac.digest()


class Ed25519Signer:
    """Ed25519 signatures: readers hold only ``public_keys`` (and cannot sign); the writer
    holds ``signing_key`` under ``signing_key_id`` too. Raises :class:`MissingKeyError` when
    only one of the two is given."""

    __slots__ = ("_public", "_retired", "_signing", "_signing_id")
    algorithm: ClassVar[str] = "EdDSA"

    def __init__(
        self,
        *,
        public_keys: Mapping[str, Ed25519PublicKey] | None = None,
        signing_key: Ed25519PrivateKey | None = None,
        signing_key_id: str | None = None,
        retired: Iterable[str] = (),
    ) -> None:
        if (signing_key is None) != (signing_key_id is None):
            raise MissingKeyError("an Ed25519 signing key needs its key id, and the reverse")
        self._public = dict(public_keys or {})
        if signing_key is not None and signing_key_id is not None:
            self._public[signing_key_id] = signing_key.public_key()
        self._signing, self._signing_id = signing_key, signing_key_id
        self._retired = frozenset(retired)

    @classmethod
    def from_keyring(cls, keyring: KeyRing) -> Ed25519Signer:
        """The writer's signer of a key ring: each key's Ed25519 private key is derived from
        its secret (HKDF, purpose ``"ed25519-signing-key"``), the active one signs, the others
        verify. Give readers :meth:`public_json` instead of the ring."""
        public = {key.key_id: _ed25519_private(key).public_key() for key in keyring.live}
        return cls(
            public_keys=public,
            signing_key=_ed25519_private(keyring.active),
            signing_key_id=keyring.active.key_id,
            retired=keyring.retired,
        )

    def public_json(self) -> str:
        """The public keys (and retired ids) as JSON, for readers: no secret in it."""
        public = {
            key_id: b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw))
            for key_id, key in sorted(self._public.items())
        }
        return json.dumps({"public_keys": public, "retired": sorted(self._retired)})

    @classmethod
    def from_public_json(cls, text: str | bytes) -> Ed25519Signer:
        """A reader's signer (verifies, cannot sign) from :meth:`public_json`'s text.

        Raises :class:`KeyRingError` for anything else."""
        try:
            data = json.loads(text)
            keys = {
                str(key_id): Ed25519PublicKey.from_public_bytes(_raw_key(raw))
                for key_id, raw in data["public_keys"].items()
            }
            retired = [str(key_id) for key_id in data.get("retired", [])]
        except (ValueError, TypeError, KeyError, AttributeError):
            raise KeyRingError("not a list of Ed25519 public keys") from None
        return cls(public_keys=keys, retired=retired)

    def __repr__(self) -> str:
        return (
            f"Ed25519Signer(signing_key_id={self._signing_id!r}, "
            f"public_keys={sorted(self._public)!r}, retired={sorted(self._retired)!r})"
        )

    @property
    def active_key_id(self) -> str:
        """The signing key's id. Raises :class:`MissingKeyError` for a reader."""
        if self._signing_id is None:
            raise MissingKeyError("this Ed25519 signer holds no signing key (a reader)")
        return self._signing_id

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature of ``message``. Raises :class:`MissingKeyError` for a reader."""
        if self._signing is None:
            raise MissingKeyError("this Ed25519 signer holds no signing key (a reader)")
        return self._signing.sign(message)

    def verify(self, key_id: str, message: bytes, signature: bytes, doc_id: str | None) -> bool:
        """Check an Ed25519 signature. Raises :class:`UnknownKeyError`/:class:`RetiredKeyError`."""
        public = self._public.get(key_id)
        if public is None:
            where = f"document {doc_id!r}"
            if key_id in self._retired:
                raise RetiredKeyError(
                    f"{where} is signed with key {key_id!r}, which is retired",
                    doc_id=doc_id,
                    key_id=key_id,
                )
            raise UnknownKeyError(
                f"{where} is signed with key id {key_id!r}, which is not known",
                doc_id=doc_id,
                key_id=key_id,
            )
        try:
            public.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def _ed25519_private(key: Key) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(derive_key(key.secret, ED25519_SIGNING_KEY))


def _raw_key(raw: object) -> bytes:
    decoded = b64decode(raw)
    if decoded is None:
        raise ValueError("not base64url")
    return decoded


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
    attachments = body.get("_attachments")
    if attachments is not None:
        body["_attachments"] = _attachment_entries(_doc_id(doc), attachments)
    head = {"v": SIGNATURE_VERSION, "alg": algorithm, "kid": key_id}
    return canonical({**head, "att": dict(attachment_sha256), "doc": body})


class SignatureCodec:
    """The document codec that signs every write and verifies every read.

    ``accept_unsigned=True`` is the adoption mode for databases that existed before the
    library: an unsigned document is read as it is (and signed at its next write). Off by
    default: an unsigned document (an unsigned deletion included) is :class:`UnsignedDocument`.
    """

    __slots__ = ("accept_unsigned", "field", "signer")

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
        """The document with its signature. Raises :class:`UnsignableDocument`."""
        _check_context(doc, context)
        return self.sign(doc)

    def decode(self, doc: dict[str, Any], context: DocumentContext) -> dict[str, Any]:
        """The document without its signature, once verified. Raises
        :class:`TamperedDocument` (and its :class:`UnsignedDocument`), :class:`MalformedEnvelope`,
        :class:`UnknownKeyError`, :class:`RetiredKeyError`."""
        if doc.get("_id") != context.doc_id:
            raise _tampered(context.doc_id, "is not the document asked for (another _id)")
        return self.verify(doc)

    def sign(
        self, doc: Mapping[str, Any], *, attachment_sha256: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """A copy of ``doc`` signed under the active key (an old signature replaced).

        Inline attachments are recorded by SHA-256; stubs keep the ``attachment_sha256`` given
        for them. Raises :class:`UnsignableDocument`."""
        doc_id = _doc_id(doc)
        unsigned = (
            doc if self.field not in doc else {k: v for k, v in doc.items() if k != self.field}
        )
        att = _attachment_hashes(doc_id, unsigned.get("_attachments"), attachment_sha256 or {})
        _refuse_pending_secrets(doc_id, unsigned)
        algorithm = self.signer.algorithm
        key_id, message = self._signing_message(unsigned, att, algorithm, doc_id)
        signature = self.signer.sign(message)
        envelope: dict[str, Any] = {"v": SIGNATURE_VERSION, "alg": algorithm, "kid": key_id}
        envelope["sig"] = b64encode(signature)
        if att:
            envelope["att"] = att
        signed = dict(unsigned)
        signed[self.field] = envelope
        return signed

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
        if envelope["alg"] != self.signer.algorithm:
            raise _tampered(doc_id, f"is signed with {envelope['alg']!r}, not the expected alg")
        unsigned = dict(doc)
        del unsigned[self.field]
        message = _read_message(unsigned, self.signer.algorithm, key_id, att, doc_id)
        if not self.signer.verify(key_id, message, signature, doc_id):
            raise _tampered(doc_id, "does not match its signature")
        _check_inline_contents(doc_id, unsigned.get("_attachments"), att)
        return unsigned, dict(att)

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
        self, doc: Mapping[str, Any], att: Mapping[str, str], algorithm: str, doc_id: str | None
    ) -> tuple[str, bytes]:
        key_id = self.signer.active_key_id  # (signed too: known before the message is built)
        try:
            message = signing_input(
                doc, algorithm=algorithm, key_id=key_id, attachment_sha256=att, field=self.field
            )
        except CanonicalizationError as exc:
            raise UnsignableDocument(
                f"document {doc_id!r}: {_unsafe_path(doc) or 'a value'} has no canonical JSON "
                f"form ({type(exc).__name__}): JSON readers would change it",
                doc_id=doc_id,
                field=_unsafe_path(doc),
            ) from None
        return key_id, message

    def _parse(self, envelope: object, doc_id: str | None) -> tuple[str, bytes, dict[str, str]]:
        if not isinstance(envelope, dict) or not (
            _ENVELOPE_REQUIRED <= envelope.keys() <= _ENVELOPE_ALLOWED
        ):
            raise _malformed(doc_id, "has missing or unknown members")
        version = envelope["v"]  # (type checked too: JSON's true equals 1 in Python)
        if type(version) is not int or version != SIGNATURE_VERSION:
            raise _malformed(doc_id, "has an unknown version")
        if not isinstance(envelope["alg"], str):
            raise _malformed(doc_id, "has an algorithm that is not a string")
        kid, signature = envelope["kid"], b64decode(envelope["sig"])
        att = envelope.get("att", {})
        if not isinstance(kid, str) or signature is None:
            raise _malformed(doc_id, "has a badly encoded key id or signature")
        if not isinstance(att, dict) or not all(isinstance(v, str) for v in att.values()):
            raise _malformed(doc_id, "has a badly encoded attachment list")
        return kid, signature, att


def _read_message(
    doc: Mapping[str, Any], algorithm: str, key_id: str, att: Mapping[str, str], doc_id: str | None
) -> bytes:
    try:
        return signing_input(doc, algorithm=algorithm, key_id=key_id, attachment_sha256=att)
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


def _attachment_entries(doc_id: str | None, attachments: object) -> dict[str, Any]:
    if not isinstance(attachments, dict):
        raise _malformed(doc_id, "has _attachments that are not an object")
    return {name: _attachment_entry(doc_id, name, att) for name, att in attachments.items()}


def _attachment_entry(doc_id: str | None, name: str, att: object) -> dict[str, Any]:
    if not isinstance(att, dict):
        raise _malformed(doc_id, f"has attachment {name!r} that is not an object")
    content_type = att.get("content_type")
    if "data" in att:
        data = _inline_data(doc_id, name, att["data"])
        md5 = hashlib.md5(data, usedforsecurity=False).digest()
        digest: object = "md5-" + base64.b64encode(md5).decode("ascii")
        length: object = len(data)
    elif att.get("stub") is True:
        digest, length = att.get("digest"), att.get("length")
    else:
        raise _malformed(doc_id, f"has attachment {name!r} neither inline nor a stub")
    return {"content_type": content_type, "digest": digest, "length": length}


def _inline_data(doc_id: str | None, name: str, data: object) -> bytes:
    try:
        if isinstance(data, str):
            return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        pass
    raise _malformed(doc_id, f"has attachment {name!r} whose data is not base64")


def _attachment_hashes(
    doc_id: str | None, attachments: object, known: Mapping[str, str]
) -> dict[str, str]:
    if attachments is None:
        return {}
    if not isinstance(attachments, dict):
        raise _malformed(doc_id, "has _attachments that are not an object")
    hashes: dict[str, str] = {}
    for name, att in attachments.items():
        if isinstance(att, dict) and "data" in att:
            hashes[name] = hashlib.sha256(_inline_data(doc_id, name, att["data"])).hexdigest()
        elif name in known:
            hashes[name] = known[name]
    return hashes


def _check_inline_contents(doc_id: str | None, attachments: object, att: Mapping[str, str]) -> None:
    # The MD5 of inline data was checked through the signed digest; the SHA-256 closes MD5's
    # collision gap for attachments that carry one.
    if not isinstance(attachments, dict):
        return
    for name, entry in attachments.items():
        expected = att.get(name)
        if expected is not None and isinstance(entry, dict) and "data" in entry:
            found = hashlib.sha256(_inline_data(doc_id, name, entry["data"])).hexdigest()
            if not hmac.compare_digest(found, expected):
                raise _tampered(doc_id, f"attachment {name!r} is not the signed content")


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
