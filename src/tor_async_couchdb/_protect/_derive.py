"""Per-use keys derived from a key ring's secrets with HKDF-SHA256 (RFC 5869).

``derive_key(secret, purpose, *context)`` is HKDF-SHA256 with no salt (the input is a uniformly
random secret, for which RFC 5869 §3.1 says a salt adds nothing), a 32-byte output and as
``info`` the RFC 8785 canonical JSON array ``["tor-async-couchdb/1", purpose, *context]``:

=====================  ===========================  ==========================================
use                    purpose                      context
=====================  ===========================  ==========================================
field encryption       ``"field-encryption"``       type name (no version), field path
blind index            ``"blind-index"``            type name (no version), field path
HMAC signature         ``"document-signature"``     (none)
Ed25519 private key    ``"ed25519-signing-key"``    (none)
=====================  ===========================  ==========================================

A JSON array makes the ``info`` unambiguous (no ``"a" + "bc"`` = ``"ab" + "c"``); the leading
label separates these keys from any other use of the same secret and versions the scheme.
Every field of every model has keys of its own: a ciphertext or blind index of one field says
nothing about another's.
"""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ._encoding import canonical
from ._keys import Key

__all__ = [
    "BLIND_INDEX",
    "DOCUMENT_SIGNATURE",
    "ED25519_SIGNING_KEY",
    "FIELD_ENCRYPTION",
    "LABEL",
    "DerivedKeys",
    "derive_key",
]

LABEL: Final = "tor-async-couchdb/1"
FIELD_ENCRYPTION: Final = "field-encryption"
BLIND_INDEX: Final = "blind-index"
DOCUMENT_SIGNATURE: Final = "document-signature"
ED25519_SIGNING_KEY: Final = "ed25519-signing-key"
_MAX_CACHED: Final = 4096


def derive_key(secret: bytes, purpose: str, *context: str) -> bytes:
    """The 32-byte key for ``purpose`` and ``context`` (see the module's table)."""
    info = canonical([LABEL, purpose, *context])
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=info).derive(secret)


class DerivedKeys:
    """A codec's cache of derived keys: HKDF on every field of every document would cost more
    than the encryption. Bounded (a model has few fields, a ring few keys), owned by one codec."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[tuple[str, bytes, str, tuple[str, ...]], bytes] = {}

    def __repr__(self) -> str:
        return f"DerivedKeys({len(self._cache)} cached)"

    def get(self, key: Key, purpose: str, *context: str) -> bytes:
        """``derive_key(key.secret, purpose, *context)``, cached by key id and secret."""
        # The secret is part of the cache key: two rings may reuse an id for other secrets.
        cache_key = (key.key_id, key.secret, purpose, context)
        found = self._cache.get(cache_key)
        if found is None:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            found = self._cache[cache_key] = derive_key(key.secret, purpose, *context)
        return found
