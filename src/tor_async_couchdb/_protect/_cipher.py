"""Encrypted fields: AES-256-GCM under a per-field key, bound to their document and field.

The stored value of an encrypted field is a versioned envelope::

    {"v": 1, "alg": "A256GCM", "kid": "<key id>", "iv": "<nonce>", "ct": "<ciphertext+tag>",
     "bi": "<blind index>"}        # "bi" only for Encrypted(blind_index=True)

``iv``, ``ct`` and ``bi`` are unpadded base64url. To decrypt by hand (``docs/protection.md``):

* key = HKDF-SHA256(secret of ``kid``, salt none, length 32,
  info = JCS(``["tor-async-couchdb/1", "field-encryption", <type name>, <field>]``));
* associated data = JCS(``[<document id>, <type name>, <field>, <kid>]``), the type name without
  its version (an upgrade keeps the ciphertexts readable);
* ``AESGCM(key).decrypt(iv, ct, associated data)`` gives the value's JSON text, padded with
  spaces to a multiple of ``Encrypted.pad`` bytes (JSON ignores them).

The database name is *not* bound: a replica in another data center, or a restored backup, may
have another name and must still read its documents. Moving a document to another database of
the same deployment is therefore not detected; deployments that must keep databases apart give
each its own key ring.

The blind index ``bi`` is HMAC-SHA256 under the field's own derived key (purpose
``"blind-index"``) of the value's RFC 8785 canonical JSON, truncated to 128 bits: with n distinct
values, the chance of any two sharing an index is about n²/2¹²⁹ (below 10⁻¹⁹ for a billion
values), so a lookup needs no false-positive filter, while 16 bytes keep views small. It leaks
equality (documents with one value share one index), never the value.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any, ClassVar, Final, NamedTuple

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .._exceptions import (
    DecryptionFailed,
    InvalidInputError,
    MalformedEnvelope,
    NotJSONError,
    TamperedDocument,
    UnprotectedField,
)
from .._models import FieldMarker
from ._derive import BLIND_INDEX, FIELD_ENCRYPTION, DerivedKeys
from ._encoding import b64decode, b64encode, canonical
from ._keys import Key, KeyRing
from ._mac import KeyedSha256
from ._protocol import FieldContext

__all__ = [
    "ALGORITHM",
    "ENVELOPE_VERSION",
    "Encrypted",
    "EncryptedCodec",
    "FieldCipher",
    "associated_data",
]

ENVELOPE_VERSION: Final = 1
ALGORITHM: Final = "A256GCM"
_NONCE_BYTES: Final = 12  # GCM's 96-bit nonce: random per write, as NIST SP 800-38D allows
_TAG_BYTES: Final = 16
_BLIND_INDEX_BYTES: Final = 16
_MAX_CACHED: Final = 4096
_REQUIRED: Final = frozenset({"v", "alg", "kid", "iv", "ct"})
_ALLOWED: Final = _REQUIRED | {"bi"}


@dataclass(frozen=True, slots=True)
class Encrypted(FieldMarker):
    """Store the field encrypted (AES-256-GCM, see the module).

    ``blind_index=True`` adds a blind index to the envelope, so that an ``Indexed()`` field can
    be looked up by equality (it leaks which documents share a value); an ``Indexed()`` field
    must ask for it. ``pad`` rounds the plaintext's length up to a multiple of that many bytes,
    so that short values of different lengths (``true``/``false``) look alike.
    Raises :class:`InvalidInputError` for a ``pad`` outside 1..4096.
    """

    needs_codec: ClassVar[bool] = True  # never written unless an EncryptedCodec encrypts it
    blind_index: bool = False
    pad: int = 16

    def __post_init__(self) -> None:
        if not isinstance(self.pad, int) or not 1 <= self.pad <= 4096:
            raise InvalidInputError(f"Encrypted(pad=...) must be 1..4096, not {self.pad!r}")

    @property
    def view_member(self) -> str | None:
        """The envelope member a view over this field must emit (``"bi"``), or ``None`` when
        the field has no blind index (and cannot be indexed)."""
        return "bi" if self.blind_index else None


def associated_data(doc_id: str, type_name: str, path: str, key_id: str) -> bytes:
    """The AES-GCM associated data of a field: JCS of ``[doc id, type name, path, key id]``.

    Raises :class:`NotJSONError` for a string JSON cannot hold (a lone surrogate)."""
    # An array of strings has no keys to sort and no numbers: orjson's compact output is its
    # RFC 8785 form (the escapes agree, test_protect_encoding holds them equal).
    try:
        return orjson.dumps([doc_id, type_name, path, key_id])
    except orjson.JSONEncodeError:
        raise NotJSONError(f"document {doc_id!r}: an id or name JSON cannot hold") from None


class FieldCipher:
    """Encrypts and decrypts field values with a key ring (the pure core of the codec)."""

    __slots__ = ("_aeads", "_blind_macs", "_derived", "keyring")

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring
        self._derived = DerivedKeys()
        # One AESGCM object per field and key: making one costs more than a small encryption.
        self._aeads: dict[tuple[str, bytes, str, str], AESGCM] = {}
        self._blind_macs: dict[tuple[str, bytes, str, str], KeyedSha256] = {}

    def __repr__(self) -> str:
        return f"FieldCipher({self.keyring!r})"

    def encrypt(self, value: Any, context: FieldContext, marker: Encrypted) -> dict[str, Any]:
        """The envelope of a JSON value under the active key. Raises :class:`NotJSONError`."""
        key = self.keyring.active
        plaintext = _json_bytes(value, context)
        plaintext += b" " * (-len(plaintext) % marker.pad)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        aad = associated_data(context.doc_id, context.type_name, context.path, key.key_id)
        sealed = self._aead(key, context).encrypt(nonce, plaintext, aad)
        envelope: dict[str, Any] = {
            "v": ENVELOPE_VERSION,
            "alg": ALGORITHM,
            "kid": key.key_id,
            "iv": b64encode(nonce),
            "ct": b64encode(sealed),
        }
        if marker.blind_index:
            envelope["bi"] = self.blind_index(value, key, context)
        return envelope

    def decrypt(self, envelope: Any, context: FieldContext) -> Any:
        """The JSON value of an envelope.

        Raises :class:`UnprotectedField` (not an envelope), :class:`MalformedEnvelope`,
        :class:`UnknownKeyError`, :class:`RetiredKeyError`, :class:`DecryptionFailed`."""
        parsed = _parse(envelope, context)
        key = self.keyring.get(parsed.key_id, doc_id=context.doc_id, field=context.path)
        aad = associated_data(context.doc_id, context.type_name, context.path, key.key_id)
        try:
            plaintext = self._aead(key, context).decrypt(parsed.nonce, parsed.sealed, aad)
        except InvalidTag:
            raise DecryptionFailed(
                f"document {context.doc_id!r} field {context.path!r}: the ciphertext does not "
                f"authenticate under key {key.key_id!r} (copied, edited, or a wrong secret)",
                doc_id=context.doc_id,
                field=context.path,
                key_id=key.key_id,
            ) from None
        try:
            value = orjson.loads(plaintext)
        except orjson.JSONDecodeError:  # authentic, so written by a key holder: still typed
            raise _malformed(context, "decrypts to no JSON value") from None
        if parsed.blind_index is not None and not hmac.compare_digest(
            parsed.blind_index, self.blind_index(value, key, context)
        ):
            raise TamperedDocument(
                f"document {context.doc_id!r} field {context.path!r}: the blind index does not "
                "match the value",
                doc_id=context.doc_id,
                field=context.path,
                key_id=key.key_id,
            )
        return value

    def key_id(self, envelope: Any, context: FieldContext) -> str:
        """The key id an envelope names (for rotation). Raises like :meth:`decrypt`'s parse."""
        return _parse(envelope, context).key_id

    def blind_index(self, value: Any, key: Key, context: FieldContext) -> str:
        """The blind index of a JSON value under ``key`` (see the module)."""
        try:
            message = canonical(value)
        except ValueError as exc:  # rfc8785's CanonicalizationError is a ValueError
            raise NotJSONError(
                f"document {context.doc_id!r} field {context.path!r}: the value has no "
                f"canonical JSON form for a blind index ({type(exc).__name__})"
            ) from None
        digest = self._blind_mac(key, context).digest(message)
        return b64encode(digest[:_BLIND_INDEX_BYTES])

    def blind_indexes(self, value: Any, context: FieldContext) -> list[str]:
        """The blind index of ``value`` under every live key, the active one first."""
        return [self.blind_index(value, key, context) for key in self.keyring.live]

    def _blind_mac(self, key: Key, context: FieldContext) -> KeyedSha256:
        # Keyed once per field and key (HKDF costs more than the HMAC of a value).
        cache_key = (key.key_id, key.secret, context.type_name, context.path)
        keyed = self._blind_macs.get(cache_key)
        if keyed is None:
            if len(self._blind_macs) >= _MAX_CACHED:
                self._blind_macs.clear()
            mac_key = self._derived.get(key, BLIND_INDEX, context.type_name, context.path)
            keyed = self._blind_macs[cache_key] = KeyedSha256(mac_key)
        return keyed

    def _aead(self, key: Key, context: FieldContext) -> AESGCM:
        cache_key = (key.key_id, key.secret, context.type_name, context.path)
        aead = self._aeads.get(cache_key)
        if aead is None:
            if len(self._aeads) >= _MAX_CACHED:
                self._aeads.clear()
            derived = self._derived.get(key, FIELD_ENCRYPTION, context.type_name, context.path)
            aead = self._aeads[cache_key] = AESGCM(derived)
        return aead


class EncryptedCodec:
    """The field codec of :class:`Encrypted` fields.

    ``accept_plaintext=True`` is the adoption mode for databases that existed before the
    library: a stored value that is not an envelope is read as the plaintext (and encrypted at
    the next write). Off by default: a plaintext in an encrypted field is
    :class:`UnprotectedField`.
    """

    __slots__ = ("accept_plaintext", "cipher")
    marker_type: ClassVar[type[FieldMarker]] = Encrypted
    # decode(encode(value)) == value: the store's mapper need not decrypt what it just
    # encrypted to know what the saved model holds.
    keeps_value: ClassVar[bool] = True

    def __init__(self, keyring: KeyRing, *, accept_plaintext: bool = False) -> None:
        self.cipher = FieldCipher(keyring)
        self.accept_plaintext = accept_plaintext

    def __repr__(self) -> str:
        return f"EncryptedCodec({self.cipher.keyring!r}, accept_plaintext={self.accept_plaintext})"

    async def encode(self, value: Any, context: FieldContext) -> Any:
        """The envelope of the field's JSON value (``null`` included: absence is not leaked)."""
        return self.cipher.encrypt(value, context, _marker(context))

    def decode(self, stored: Any, context: FieldContext) -> Any:
        """The JSON value of the stored envelope (see :meth:`FieldCipher.decrypt`)."""
        if self.accept_plaintext and not _looks_like_envelope(stored):
            return stored
        return self.cipher.decrypt(stored, context)

    def index_keys(self, value: Any, context: FieldContext) -> list[Any] | None:
        """One blind index per live key (a rotation leaves documents under both), or ``None``
        for a field without a blind index."""
        if not _marker(context).blind_index:
            return None
        return list(self.cipher.blind_indexes(value, context))


class _Parsed(NamedTuple):
    # (A NamedTuple: made on every read, five times cheaper than a frozen dataclass.)
    key_id: str
    nonce: bytes
    sealed: bytes
    blind_index: str | None


def _looks_like_envelope(stored: object) -> bool:
    return isinstance(stored, dict) and "v" in stored and "ct" in stored


def _parse(envelope: object, context: FieldContext) -> _Parsed:
    if not _looks_like_envelope(envelope):
        raise UnprotectedField(
            f"document {context.doc_id!r} field {context.path!r} holds no encrypted value",
            doc_id=context.doc_id,
            field=context.path,
        )
    assert isinstance(envelope, dict)  # (narrowed by _looks_like_envelope)
    keys = envelope.keys()
    if not _REQUIRED <= keys <= _ALLOWED:
        raise _malformed(context, "has missing or unknown members")
    # (type checked too: JSON's true equals 1 in Python, and one value has one spelling)
    version = envelope["v"]
    if type(version) is not int or version != ENVELOPE_VERSION or envelope["alg"] != ALGORITHM:
        raise _malformed(context, "has an unknown version or algorithm")
    nonce, sealed = b64decode(envelope["iv"]), b64decode(envelope["ct"])
    if nonce is None or len(nonce) != _NONCE_BYTES:
        raise _malformed(context, "has no 96-bit nonce")
    if sealed is None or len(sealed) < _TAG_BYTES:
        raise _malformed(context, "has no ciphertext and tag")
    kid, bi = envelope["kid"], envelope.get("bi")
    if not isinstance(kid, str) or not (bi is None or isinstance(bi, str)):
        raise _malformed(context, "has a key id or blind index that is not a string")
    return _Parsed(key_id=kid, nonce=nonce, sealed=sealed, blind_index=bi)


def _malformed(context: FieldContext, problem: str) -> MalformedEnvelope:
    return MalformedEnvelope(
        f"document {context.doc_id!r} field {context.path!r}: the envelope {problem}",
        doc_id=context.doc_id,
        field=context.path,
    )


def _marker(context: FieldContext) -> Encrypted:
    marker = context.marker
    if not isinstance(marker, Encrypted):
        raise InvalidInputError(
            f"field {context.path!r}: the encrypted-field codec got a {type(marker).__name__}"
        )
    return marker


def _json_bytes(value: Any, context: FieldContext) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise NotJSONError(
            f"document {context.doc_id!r} field {context.path!r}: the value is not JSON "
            f"({type(exc).__name__})"
        ) from None
