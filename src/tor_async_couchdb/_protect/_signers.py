"""The signers a :class:`~._signing.SignatureCodec` uses: HMAC-SHA256 under a key derived from
the key ring (the default), or Ed25519 for deployments where readers must not be able to sign."""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Mapping
from typing import ClassVar, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .._exceptions import KeyRingError, MissingKeyError, RetiredKeyError, UnknownKeyError
from ._derive import DOCUMENT_SIGNATURE, ED25519_SIGNING_KEY, DerivedKeys, derive_key
from ._encoding import b64decode, b64encode
from ._keys import Key, KeyRing
from ._mac import KeyedSha256

__all__ = ["Ed25519Signer", "HmacSigner", "Signer"]


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

    __slots__ = ("_by_id", "_derived", "_macs", "keyring")
    algorithm: ClassVar[str] = "HS256"

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring
        self._derived = DerivedKeys()
        # The keyed HMAC per key: HKDF and the key's padding run once per key, not per message.
        self._macs: dict[tuple[str, bytes], KeyedSha256] = {}
        # The keyed HMAC by key id, of the ring it was looked up in (a ring never changes, but
        # ``keyring`` may be replaced): one dict lookup per verification.
        self._by_id: dict[str, tuple[KeyRing, KeyedSha256]] = {}

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

    def signature_text(self, key_id: str, message: bytes, doc_id: str | None) -> str:
        """The unpadded base64url HMAC of ``message`` under key ``key_id``, as an envelope
        writes it (for a comparison of texts, sparing the strict decode). Raises
        :class:`UnknownKeyError`, :class:`RetiredKeyError`."""
        found = self._by_id.get(key_id)
        if found is None or found[0] is not self.keyring:
            key = self.keyring.get(key_id, doc_id=doc_id)  # (raises for a retired or unknown id)
            self._mac(key, b"")  # (makes its keyed HMAC)
            found = self._by_id[key_id] = (self.keyring, self._macs[key.key_id, key.secret])
        return b64encode(found[1].digest(message))

    def _mac(self, key: Key, message: bytes) -> bytes:
        keyed = self._macs.get((key.key_id, key.secret))
        if keyed is None:
            keyed = KeyedSha256(self._derived.get(key, DOCUMENT_SIGNATURE))
            self._macs[key.key_id, key.secret] = keyed
        return keyed.digest(message)


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
