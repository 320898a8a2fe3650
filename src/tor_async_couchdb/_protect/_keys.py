"""The key ring: keys with ids, one active for new writes, older ones accepted for reading and
verifying, retired ones refused by name.

A key ring is an object handed to the codecs; nothing here is module-global. Its secrets are
never shown: not in ``repr``, not in an error message.

The stored form (:meth:`KeyRing.from_json`, :meth:`KeyRing.from_file`,
:meth:`KeyRing.from_env`)::

    {"active": "2026-12", "keys": {"2026-12": "<base64url secret>", "2026-06": "<...>"},
     "retired": ["2025-12"]}

Each secret is at least 32 random bytes (:meth:`KeyRing.generate_secret`); every key used by the
codecs is derived from it with HKDF (see :mod:`._derive`), so one secret serves encryption,
blind indexes and HMAC signatures without any two uses sharing a key.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from .._exceptions import KeyRingError, MissingKeyError, RetiredKeyError, UnknownKeyError
from ._encoding import b64decode, b64encode

__all__ = ["DEFAULT_ENV_VAR", "Key", "KeyRing"]

DEFAULT_ENV_VAR: Final = "TOR_ASYNC_COUCHDB_KEYRING"
# Key ids go into documents and associated data: keep them short, printable and unambiguous.
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_MIN_SECRET: Final = 32  # 256 bits: the strength of AES-256 and of HMAC-SHA256


@dataclass(frozen=True, slots=True)
class Key:
    """One key: its id (written into documents) and its secret (never shown)."""

    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key_id, str) or not _KEY_ID.fullmatch(self.key_id):
            raise KeyRingError(
                f"a key id must match {_KEY_ID.pattern}, not {self.key_id!r}", key_id=None
            )
        if not isinstance(self.secret, bytes) or len(self.secret) < _MIN_SECRET:
            raise KeyRingError(
                f"key {self.key_id!r}: the secret must be at least {_MIN_SECRET} bytes",
                key_id=self.key_id,
            )


class KeyRing:
    """Keys by id: ``active`` for new writes, the others accepted for reading, ``retired`` ids
    refused with :class:`RetiredKeyError`.

    Raises :class:`KeyRingError` for a ring that names an active key it does not hold, holds a
    key twice or lists a held key as retired.
    """

    __slots__ = ("_active", "_keys", "_retired")

    def __init__(self, keys: Iterable[Key], *, active: str, retired: Iterable[str] = ()) -> None:
        self._keys: dict[str, Key] = {}
        for key in keys:
            if key.key_id in self._keys:
                raise KeyRingError(f"key id {key.key_id!r} is given twice", key_id=key.key_id)
            self._keys[key.key_id] = key
        self._retired = frozenset(retired)
        held_and_retired = self._retired & self._keys.keys()
        if held_and_retired:
            raise KeyRingError(f"keys {sorted(held_and_retired)} are both held and retired")
        if active not in self._keys:
            raise MissingKeyError(f"the active key {active!r} is not in the key ring")
        self._active = self._keys[active]

    def __repr__(self) -> str:
        accepted = [key_id for key_id in self._keys if key_id != self._active.key_id]
        return (
            f"KeyRing(active={self._active.key_id!r}, accepted={accepted!r}, "
            f"retired={sorted(self._retired)!r})"
        )

    @property
    def active(self) -> Key:
        """The key new writes use."""
        return self._active

    @property
    def live(self) -> tuple[Key, ...]:
        """Every usable key, the active one first: what a blind-index lookup must try."""
        others = (key for key in self._keys.values() if key is not self._active)
        return (self._active, *others)

    @property
    def retired(self) -> frozenset[str]:
        """The ids refused with :class:`RetiredKeyError`."""
        return self._retired

    def get(self, key_id: object, *, doc_id: str | None = None, field: str | None = None) -> Key:
        """The key called ``key_id``, for reading a document (``doc_id``/``field`` name it in
        errors). Raises :class:`RetiredKeyError` or :class:`UnknownKeyError`."""
        key = self._keys.get(key_id) if isinstance(key_id, str) else None
        if key is not None:
            return key
        where = _where(doc_id, field)
        if key_id in self._retired:
            raise RetiredKeyError(
                f"{where} uses key {key_id!r}, which is retired: rotate before retiring a key",
                doc_id=doc_id,
                field=field,
                key_id=str(key_id),
            )
        raise UnknownKeyError(
            f"{where} names key id {key_id!r}, which the key ring does not know",
            doc_id=doc_id,
            field=field,
            key_id=key_id if isinstance(key_id, str) else None,
        )

    @staticmethod
    def generate_secret() -> str:
        """A new random 256-bit secret, base64url-encoded as the stored form holds it."""
        return b64encode(secrets.token_bytes(_MIN_SECRET))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> KeyRing:
        """The key ring of the stored form (see the module). Raises :class:`KeyRingError`."""
        keys = data.get("keys")
        active = data.get("active")
        retired = data.get("retired", [])
        if not isinstance(keys, Mapping) or not isinstance(active, str):
            raise KeyRingError('a key ring needs "active" (a key id) and "keys" (id -> secret)')
        if not isinstance(retired, list) or not all(isinstance(r, str) for r in retired):
            raise KeyRingError('"retired" must be a list of key ids')
        return cls(
            (_key(key_id, secret) for key_id, secret in keys.items()),
            active=active,
            retired=retired,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> KeyRing:
        """The key ring of a JSON text in the stored form. Raises :class:`KeyRingError`."""
        try:
            data = json.loads(text)
        except ValueError:
            # Not the parser's message: it quotes the text, which holds secrets.
            raise KeyRingError("the key ring is not valid JSON") from None
        if not isinstance(data, dict):
            raise KeyRingError("the key ring must be a JSON object")
        return cls.from_mapping(data)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> KeyRing:
        """The key ring of a JSON file (keep it readable by the service's user only).

        Raises :class:`MissingKeyError` if the file cannot be read, :class:`KeyRingError`."""
        try:
            text = Path(path).read_bytes()
        except OSError as exc:
            raise MissingKeyError(f"cannot read the key ring file {str(path)!r}: {exc}") from exc
        return cls.from_json(text)

    @classmethod
    def from_env(
        cls, variable: str = DEFAULT_ENV_VAR, *, environ: Mapping[str, str] | None = None
    ) -> KeyRing:
        """The key ring held (as JSON) by an environment variable.

        Raises :class:`MissingKeyError` if it is not set, :class:`KeyRingError`."""
        value = (os.environ if environ is None else environ).get(variable)
        if not value:
            raise MissingKeyError(f"the environment variable {variable} holds no key ring")
        return cls.from_json(value)


def _key(key_id: object, secret: object) -> Key:
    decoded = b64decode(secret)
    if decoded is None:
        raise KeyRingError(f"key {key_id!r}: the secret is not unpadded base64url")
    if not isinstance(key_id, str):
        raise KeyRingError("key ids must be strings")
    return Key(key_id, decoded)


def _where(doc_id: str | None, field: str | None) -> str:
    where = f"document {doc_id!r}" if doc_id is not None else "a document"
    return f"{where} field {field!r}" if field is not None else where
