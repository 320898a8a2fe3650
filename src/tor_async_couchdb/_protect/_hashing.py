"""Hashed fields: argon2id (argon2-cffi) PHC strings, computed off the event loop.

Why a small value type (:class:`HashedSecret`) rather than a plain ``str`` field: a ``str``
cannot say whether it is a password typed by a user or the PHC string read back from the
database, and guessing wrong either stores a plaintext or hashes a hash (the user can no longer
log in). A :class:`HashedSecret` is one of two things, and only explicitly the first:

* ``HashedSecret.new("hunter2")``: a plaintext waiting to be hashed. Its ``repr`` and ``str``
  hide it. It only exists between your code and the save: the mapper's :class:`HashedCodec`
  hashes it (in a thread), and the saved model holds the hash.
* ``HashedSecret("$argon2id$v=19$m=19456,t=2,p=1$...")``: a stored hash. A bare ``str`` given to
  the field must be such a PHC string (anything else is a validation error, not a password), so
  a model read from the database (a ``str`` in the document) and saved again keeps its hash:
  the codec writes a PHC string through unchanged and never hashes it again.

Its JSON form is the PHC string; a pending plaintext's JSON form, which only the codec may see,
is ``{"$tac_unhashed": "<plaintext>"}``. The codec refuses a pending plaintext it did not hash
(``decode``), and :class:`~._signing.SignatureCodec` refuses to sign a document holding one, so a
mapper without the codec fails instead of storing it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import argon2
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from .._exceptions import InvalidInputError, UnprotectedField
from .._models import FieldMarker
from ._protocol import FieldContext

__all__ = ["PENDING_KEY", "Argon2Policy", "Hashed", "HashedCodec", "HashedSecret"]

PENDING_KEY: Final = "$tac_unhashed"
# OWASP Password Storage Cheat Sheet: argon2id with at least 19 MiB, 2 iterations, 1 lane.
_OWASP_MEMORY_KIB: Final = 19 * 1024
_OWASP_TIME_COST: Final = 2
_OWASP_PARALLELISM: Final = 1


@dataclass(frozen=True, slots=True)
class Hashed(FieldMarker):
    """Store the field as an argon2id hash (its type must be :class:`HashedSecret`, or
    ``HashedSecret | None``). The policy is the :class:`HashedCodec`'s, not the marker's: it is
    deployment configuration, and it rises over time without a model change."""

    needs_codec: ClassVar[bool] = True  # never written unless a HashedCodec hashes it


@dataclass(frozen=True, slots=True)
class Argon2Policy:
    """argon2id parameters: at least OWASP's minimum (19 MiB, t=2, p=1), configurable upward.

    Raises :class:`InvalidInputError` below the minimum.
    """

    memory_kib: int = _OWASP_MEMORY_KIB
    time_cost: int = _OWASP_TIME_COST
    parallelism: int = _OWASP_PARALLELISM
    hash_len: int = 32
    salt_len: int = 16

    def __post_init__(self) -> None:
        low = (
            self.memory_kib < _OWASP_MEMORY_KIB
            or self.time_cost < _OWASP_TIME_COST
            or self.parallelism < _OWASP_PARALLELISM
            or self.hash_len < 16
            or self.salt_len < 16
        )
        if low:
            raise InvalidInputError(
                f"argon2id parameters below OWASP's minimum (m={_OWASP_MEMORY_KIB} KiB, "
                f"t={_OWASP_TIME_COST}, p={_OWASP_PARALLELISM}; 16-byte salt and hash): {self!r}"
            )

    def hasher(self) -> argon2.PasswordHasher:
        """An argon2-cffi hasher with these parameters."""
        return argon2.PasswordHasher(
            time_cost=self.time_cost,
            memory_cost=self.memory_kib,
            parallelism=self.parallelism,
            hash_len=self.hash_len,
            salt_len=self.salt_len,
            type=argon2.Type.ID,
        )


class HashedSecret:
    """A stored argon2id hash, or (from :meth:`new`) a plaintext waiting to be hashed.

    ``HashedSecret(phc)`` raises :class:`InvalidInputError` for anything but an argon2id PHC
    string. See the module for why this type exists.
    """

    __slots__ = ("_phc", "_plaintext")
    # argon2-cffi's verify reads the parameters from the hash: one verifier serves all.
    _verifier: ClassVar[argon2.PasswordHasher] = argon2.PasswordHasher()

    def __init__(self, phc: str) -> None:
        self._phc: str | None = _checked_phc(phc)
        self._plaintext: str | None = None

    @classmethod
    def new(cls, plaintext: str) -> HashedSecret:
        """A plaintext secret, to be hashed when the model is saved."""
        if not isinstance(plaintext, str):
            raise InvalidInputError("a secret to hash must be a str")
        secret = cls.__new__(cls)
        secret._phc, secret._plaintext = None, plaintext
        return secret

    @property
    def phc(self) -> str | None:
        """The PHC string, or ``None`` while the plaintext waits to be hashed."""
        return self._phc

    @property
    def is_hashed(self) -> bool:
        """Whether this holds a hash (not a plaintext waiting to be hashed)."""
        return self._phc is not None

    def __repr__(self) -> str:
        if self._phc is None:
            return "HashedSecret(<not hashed yet>)"
        # The parameters, not the salt and hash: a logged repr must not feed a cracker.
        params = argon2.extract_parameters(self._phc)
        return (
            f"HashedSecret(argon2id m={params.memory_cost} t={params.time_cost} "
            f"p={params.parallelism})"
        )

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HashedSecret):
            return NotImplemented
        if self._phc is None or other._phc is None:
            return self is other  # two plaintexts are never compared by value
        return self._phc == other._phc

    def __hash__(self) -> int:
        return hash(self._phc) if self._phc is not None else id(self)

    async def verify(self, candidate: str) -> bool:
        """Whether ``candidate`` is the hashed secret, computed in a thread (argon2 is slow on
        purpose). Raises :class:`InvalidInputError` before the secret was hashed (saved)."""
        phc = self._require_hash()
        return await asyncio.to_thread(self._verify_sync, phc, candidate)

    def needs_rehash(self, policy: Argon2Policy) -> bool:
        """Whether the hash was made with other parameters than ``policy``'s (e.g. weaker
        ones): hash the plaintext again at the next successful :meth:`verify`."""
        return policy.hasher().check_needs_rehash(self._require_hash())

    def _require_hash(self) -> str:
        if self._phc is None:
            raise InvalidInputError("the secret is not hashed yet: save the model first")
        return self._phc

    @classmethod
    def _verify_sync(cls, phc: str, candidate: str) -> bool:
        try:
            return cls._verifier.verify(phc, candidate)
        except (VerificationError, InvalidHashError):
            return False

    def _json(self) -> Any:
        return self._phc if self._phc is not None else {PENDING_KEY: self._plaintext}

    @classmethod
    def _validate(cls, value: object) -> HashedSecret:
        if isinstance(value, HashedSecret):
            return value
        if isinstance(value, str) and _is_argon2id(value):
            return cls(value)
        raise PydanticCustomError(
            "hashed_secret",
            "expected an argon2id PHC string or HashedSecret.new(plaintext)",
        )

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                cls._json, when_used="json"
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "description": "an argon2id PHC string"}


class HashedCodec:
    """The field codec of :class:`Hashed` fields: hashes pending plaintexts with ``policy``
    (in a thread), writes stored hashes through unchanged, and on read accepts nothing but an
    argon2id PHC string (or ``null``)."""

    __slots__ = ("_hasher", "policy")
    marker_type: ClassVar[type[FieldMarker]] = Hashed

    def __init__(self, *, policy: Argon2Policy | None = None) -> None:
        self.policy = policy or Argon2Policy()
        self._hasher = self.policy.hasher()

    def __repr__(self) -> str:
        return f"HashedCodec(policy={self.policy!r})"

    async def hash(self, plaintext: str) -> HashedSecret:
        """A new hash of ``plaintext`` under the policy, computed in a thread."""
        return HashedSecret(await asyncio.to_thread(self._hasher.hash, plaintext))

    async def encode(self, value: Any, context: FieldContext) -> Any:
        """A pending plaintext -> its PHC string; a PHC string or ``None`` -> itself.

        Raises :class:`UnprotectedField` for anything else."""
        if value is None or (isinstance(value, str) and _is_argon2id(value)):
            return value
        if isinstance(value, dict) and value.keys() == {PENDING_KEY}:
            plaintext = value[PENDING_KEY]
            if isinstance(plaintext, str):
                return (await self.hash(plaintext)).phc
        raise _unprotected(context, "has no secret to hash")

    def decode(self, stored: Any, context: FieldContext) -> Any:
        """Check that the stored value is an argon2id PHC string (or ``null``) and return it.

        Raises :class:`UnprotectedField` for anything else (a plaintext put in the database)."""
        if stored is None or (isinstance(stored, str) and _is_argon2id(stored)):
            return stored
        raise _unprotected(context, "holds no argon2id hash")

    def index_keys(self, value: Any, context: FieldContext) -> list[Any] | None:
        """Hashed fields have no index (each hash has its own salt)."""
        return None


def _unprotected(context: FieldContext, problem: str) -> UnprotectedField:
    return UnprotectedField(
        f"document {context.doc_id!r} field {context.path!r} {problem}",
        doc_id=context.doc_id,
        field=context.path,
    )


def _is_argon2id(value: str) -> bool:
    if not value.startswith("$argon2id$"):
        return False
    try:
        argon2.extract_parameters(value)
    except InvalidHashError:
        return False
    return True


def _checked_phc(phc: object) -> str:
    if not isinstance(phc, str) or not _is_argon2id(phc):
        raise InvalidInputError("not an argon2id PHC string")
    return phc
