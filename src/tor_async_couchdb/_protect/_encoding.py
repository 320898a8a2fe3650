"""Byte encodings shared by the codecs: unpadded base64url, and the canonical JSON of RFC 8785."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import rfc8785

__all__ = ["b64decode", "b64encode", "canonical"]

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64encode(data: bytes) -> str:
    """Unpadded base64url (RFC 4648 §5), as JOSE writes it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: object) -> bytes | None:
    """The bytes of unpadded base64url ``text``, or ``None`` if it is not that.

    Strict: other alphabets, padding, whitespace and non-canonical trailing bits are refused,
    so that one value has one spelling (an edited envelope cannot keep its meaning).
    """
    if not isinstance(text, str) or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return data if b64encode(data) == text else None


def canonical(value: Any) -> bytes:
    """RFC 8785 (JCS) bytes of a JSON value. Raises ``rfc8785.CanonicalizationError``."""
    return rfc8785.dumps(value)
