"""Data protection, pure (no I/O): the key ring, hashed and encrypted fields, signatures.

* :class:`KeyRing`: keys by id, one active, older ones accepted for reading, retired ones
  refused; from the environment, a file or code, handed to the codecs (never global).
* :class:`Hashed` fields (:class:`HashedSecret`, :class:`HashedCodec`): argon2id PHC strings.
* :class:`Encrypted` fields (:class:`EncryptedCodec`, :class:`FieldCipher`): AES-256-GCM under
  per-field HKDF keys, bound to document id, type name, field and key id; optional blind index.
* :class:`SignatureCodec` (:class:`HmacSigner`, :class:`Ed25519Signer`): a signature over the
  RFC 8785 canonical form of the whole document.
* :class:`Rotator`: re-encrypt and re-sign one document under the active keys.
* :func:`validate_doc_update_design`, :func:`security_object`: server-side defence in depth.

See ``docs/protection.md`` for the threat model and the exact formats.
"""

from ._bundle import Protection
from ._cipher import (
    ALGORITHM,
    ENVELOPE_VERSION,
    Encrypted,
    EncryptedCodec,
    FieldCipher,
    associated_data,
)
from ._derive import derive_key
from ._hashing import PENDING_KEY, Argon2Policy, Hashed, HashedCodec, HashedSecret
from ._keys import DEFAULT_ENV_VAR, Key, KeyRing
from ._markers import check_model
from ._protocol import DocumentCodec, DocumentContext, FieldCodec, FieldContext
from ._rotate import Rotator
from ._server import DESIGN_ID, security_object, validate_doc_update_design
from ._signers import Ed25519Signer, HmacSigner, Signer
from ._signing import EXCLUDED_MEMBERS, SIGNATURE_FIELD, SignatureCodec, signing_input

__all__ = [
    "ALGORITHM",
    "Argon2Policy",
    "DEFAULT_ENV_VAR",
    "DESIGN_ID",
    "DocumentCodec",
    "DocumentContext",
    "ENVELOPE_VERSION",
    "EXCLUDED_MEMBERS",
    "Ed25519Signer",
    "Encrypted",
    "EncryptedCodec",
    "FieldCipher",
    "FieldCodec",
    "FieldContext",
    "Hashed",
    "HashedCodec",
    "HashedSecret",
    "HmacSigner",
    "Key",
    "KeyRing",
    "PENDING_KEY",
    "Protection",
    "Rotator",
    "SIGNATURE_FIELD",
    "SignatureCodec",
    "Signer",
    "associated_data",
    "check_model",
    "derive_key",
    "security_object",
    "signing_input",
    "validate_doc_update_design",
]
