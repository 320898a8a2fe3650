"""Key rotation, one document at a time: the pure part that the store pages through.

The store's ``rotate`` reads a page of raw documents (by key, from the model's ``_all`` view),
calls :meth:`Rotator.rotate` on each, writes the non-``None`` results with ``_bulk_docs`` and
records the last key of the page as its checkpoint. A document already under the active key
gives ``None``, so a run that was interrupted and started again only writes what is left
(409s are re-read and rotated again: someone else wrote a newer, already rotated, revision).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._cipher import Encrypted, FieldCipher, _looks_like_envelope
from ._protocol import FieldContext
from ._signing import SignatureCodec

__all__ = ["Rotator"]


class Rotator:
    """Re-encrypts a document's encrypted fields and re-signs it under the active keys.

    ``cipher`` is the encrypted-field codec's :class:`FieldCipher` (``None`` for models without
    encrypted fields), ``signature`` the document codec. Hashed fields are left alone: a hash
    cannot be re-made without the plaintext (``HashedSecret.needs_rehash`` at the next login).
    ``adopt=True`` (the adoption mode of the encrypted-field codec): an encrypted field still
    holding its plaintext is encrypted under the active key, instead of being refused as
    :class:`UnprotectedField`.
    """

    __slots__ = ("adopt", "cipher", "signature")

    def __init__(
        self, *, signature: SignatureCodec, cipher: FieldCipher | None = None, adopt: bool = False
    ) -> None:
        self.signature = signature
        self.cipher = cipher
        self.adopt = adopt

    def __repr__(self) -> str:
        return f"Rotator(signature={self.signature!r}, cipher={self.cipher!r}, adopt={self.adopt})"

    def needs_rotation(
        self, doc: Mapping[str, Any], *, type_name: str, encrypted: Mapping[str, Encrypted]
    ) -> bool:
        """Whether the signature or an encrypted field of ``doc`` uses another than the active
        key (unverified: :meth:`rotate` verifies)."""
        if self.signature.key_id(doc) != self.signature.signer.active_key_id:
            return True
        return bool(self._stale_fields(doc, type_name, encrypted))

    def rotate(
        self, doc: Mapping[str, Any], *, type_name: str, encrypted: Mapping[str, Encrypted]
    ) -> dict[str, Any] | None:
        """The document to write (``_rev`` kept) with every key the active one, or ``None`` if
        it is current already.

        ``encrypted`` maps the model's encrypted field names to their markers
        (``dict(Model.field_markers(Encrypted))``). Verifies first: raises
        :class:`TamperedDocument`, :class:`UnknownKeyError`, :class:`RetiredKeyError`,
        :class:`MalformedEnvelope` like a read would.
        """
        if not self.needs_rotation(doc, type_name=type_name, encrypted=encrypted):
            return None
        fresh, hashes = self.signature.verified(doc)
        for name in self._stale_fields(fresh, type_name, encrypted):
            context = FieldContext(str(doc["_id"]), type_name, name, encrypted[name])
            assert self.cipher is not None  # (no stale fields without a cipher)
            stored = fresh[name]
            value = stored if self._plaintext(stored) else self.cipher.decrypt(stored, context)
            fresh[name] = self.cipher.encrypt(value, context, encrypted[name])
        return self.signature.sign(fresh, attachment_sha256=hashes)

    def _stale_fields(
        self, doc: Mapping[str, Any], type_name: str, encrypted: Mapping[str, Encrypted]
    ) -> list[str]:
        if self.cipher is None:
            return []
        active = self.cipher.keyring.active.key_id
        doc_id = str(doc.get("_id"))
        return [
            name
            for name, marker in encrypted.items()
            if name in doc
            and (
                self._plaintext(doc[name])
                or self.cipher.key_id(doc[name], FieldContext(doc_id, type_name, name, marker))
                != active
            )
        ]

    def _plaintext(self, stored: object) -> bool:
        # Only in adoption mode: otherwise a plaintext is UnprotectedField (from key_id/decrypt).
        return self.adopt and not _looks_like_envelope(stored)
