"""The codecs a protected store needs, made from one key ring."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ._cipher import EncryptedCodec
from ._hashing import Argon2Policy, HashedCodec
from ._keys import KeyRing
from ._protocol import DocumentCodec, FieldCodec
from ._rotate import Rotator
from ._signers import HmacSigner, Signer
from ._signing import SignatureCodec

__all__ = ["Protection"]


@dataclass(frozen=True, slots=True)
class Protection:
    """Hashing, encryption and signing codecs over one key ring, in the mapper's order.

    ``Protection.from_keyring(ring)`` signs with HMAC-SHA256 under the same ring; pass
    ``signer=Ed25519Signer(...)`` where readers must not be able to sign. ``adopt=True`` is the
    adoption mode (unsigned documents and plaintext fields read as they are, protected at their
    next write) for databases that existed before the library.

    A bundle is the ``codecs`` of a store as it is: ``tac.CouchDB(url,
    codecs=Protection.from_keyring(ring))`` (iterating it gives its codecs in the mapper's
    order: hashing, encryption, then the signature).
    """

    hashed: HashedCodec
    encrypted: EncryptedCodec
    signature: SignatureCodec

    @classmethod
    def from_keyring(
        cls,
        keyring: KeyRing,
        *,
        policy: Argon2Policy | None = None,
        signer: Signer | None = None,
        adopt: bool = False,
    ) -> Protection:
        """The codecs for ``keyring`` (see the class)."""
        return cls(
            hashed=HashedCodec(policy=policy),
            encrypted=EncryptedCodec(keyring, accept_plaintext=adopt),
            signature=SignatureCodec(signer or HmacSigner(keyring), accept_unsigned=adopt),
        )

    @property
    def field_codecs(self) -> tuple[FieldCodec, ...]:
        """The field codecs, in the order the mapper runs them on write."""
        return (self.hashed, self.encrypted)

    @property
    def document_codecs(self) -> tuple[DocumentCodec, ...]:
        """The document codecs, in the order the mapper runs them on write."""
        return (self.signature,)

    def __iter__(self) -> Iterator[FieldCodec | DocumentCodec]:
        yield from self.field_codecs
        yield from self.document_codecs

    def rotator(self) -> Rotator:
        """The :class:`Rotator` that re-encrypts and re-signs under the active keys."""
        return Rotator(
            signature=self.signature,
            cipher=self.encrypted.cipher,
            adopt=self.encrypted.accept_plaintext,
        )
