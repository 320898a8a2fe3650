"""Byte encodings shared by the codecs: unpadded base64url, and the canonical JSON of RFC 8785."""

from __future__ import annotations

import binascii
import math
import re
from typing import Any, Final

import orjson
import rfc8785

__all__ = ["b64decode", "b64encode", "canonical", "es6_number"]

_TO_URL: Final = bytes.maketrans(b"+/", b"-_")
# A last character that carries 4 (2 chars left over) or 2 (3 left over) meaningful bits.
_CANONICAL_LAST: Final = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}
# The standard alphabet's "+" and "/" (and "=") become "!", which a2b_base64 refuses.
_FROM_URL: Final = bytes.maketrans(b"-_+/=", b"+/!!!")
_MAX_SAFE: Final = 2**53 - 1
# Where UTF-16 order (JCS's key order) and code point order (orjson's) can disagree: a key
# holding a character from U+E000 up may sort differently against one outside the BMP.
_UTF16_SENSITIVE = re.compile("[\ue000-\U0010ffff]").search
# In orjson's output (with a "," put first): a number token with an exponent or an integral
# fraction ("1e+16", "1.0"), where ECMAScript writes floats otherwise. A string holding such
# text only costs the slower path. (One character class to start with: the regex engine scans
# for it; an alternation there made the search 20 times slower.)
_EXPONENT = re.compile(rb"e[+-][0-9]").search
_INTEGRAL = re.compile(rb"\.0[,\]}]").search
_ODD_NUMBER = re.compile(rb"[:\[,]-?[0-9]+(?:\.0(?![0-9])|(?:\.[0-9]+)?[eE])").search
# Integers beyond 2^53 and anything but JSON's own types raise, for the reference to handle.
_FAST: Final = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_STRICT_INTEGER
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


class _UseReference(Exception):
    """The value needs the reference implementation (or its error)."""


def b64encode(data: bytes) -> str:
    """Unpadded base64url (RFC 4648 §5), as JOSE writes it."""
    return binascii.b2a_base64(data, newline=False).translate(_TO_URL).rstrip(b"=").decode()


def b64decode(text: object) -> bytes | None:
    """The bytes of unpadded base64url ``text``, or ``None`` if it is not that.

    Strict: other alphabets, padding, whitespace and non-canonical trailing bits are refused,
    so that one value has one spelling (an edited envelope cannot keep its meaning).
    """
    if type(text) is not str or not text.isascii():
        return None
    tail = len(text) % 4
    # The unused low bits of a last partial character must be zero (RFC 4648 §3.5).
    if tail == 1 or (tail and text[-1] not in _CANONICAL_LAST[tail]):
        return None
    encoded = text.encode("ascii").translate(_FROM_URL) + b"=" * (-len(text) % 4)
    try:
        return binascii.a2b_base64(encoded, strict_mode=True)
    except binascii.Error:  # another alphabet ("+", "/", "="), or whitespace
        return None


def canonical(value: Any) -> bytes:
    """RFC 8785 (JCS) bytes of a JSON value. Raises ``rfc8785.CanonicalizationError``.

    The ``rfc8785`` package is the reference, but pure Python (about 50 µs for a small
    document, as much as a whole model get): orjson with sorted keys writes the same bytes for
    strings, integers within 2^53, booleans, lists, objects whose keys sort alike by code point
    and by UTF-16 unit, and floats in plain notation with a fraction. So orjson writes the
    document, and only where its output may hold anything else (a number token with an
    exponent or an integral fraction like ``1.0``; a character from U+E000 up, which could sort
    differently as a key; a null, which may have been a NaN) are the floats rewritten as
    ECMAScript numbers (:func:`es6_number`) and the document written again. An unsafe
    integer, a lone surrogate or another type goes to the reference, which also raises its
    errors. A hypothesis test holds the result equal to the reference's.
    """
    try:
        fast = orjson.dumps(value, option=_FAST)
    except orjson.JSONEncodeError:
        return rfc8785.dumps(value)
    # Non-ASCII output may hold a character from U+E000 up (which could sort differently as a
    # key); a null may have been a NaN or an infinity, which orjson writes so and JCS refuses.
    if fast.isascii() and b"null" not in fast:
        # orjson writes an exponent as "e+"/"e-" and an integral float with ".0": two searches
        # that begin with a literal (which the regex engine scans for quickly) find where one
        # may be, and only then the exact pattern looks at the number tokens. (Inline: every
        # signature and verification passes here.)
        if not (_EXPONENT(fast) or _INTEGRAL(fast) or fast.endswith(b".0")):
            return fast
        if _ODD_NUMBER(b"," + fast) is None:
            return fast
    try:
        return orjson.dumps(_prepared(value), option=orjson.OPT_SORT_KEYS)
    except (_UseReference, orjson.JSONEncodeError):
        return rfc8785.dumps(value)


def _prepared(value: Any) -> Any:
    """``value`` itself, or a copy with its floats as JCS fragments (copied only if needed)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        if -_MAX_SAFE <= value <= _MAX_SAFE:
            return value
        raise _UseReference
    if kind is float:
        return orjson.Fragment(es6_number(value).encode())
    if kind is dict:
        return _prepared_object(value)
    if kind is list:
        return _prepared_array(value)
    raise _UseReference


def _prepared_object(value: dict[Any, Any]) -> dict[str, Any]:
    copied: dict[str, Any] | None = None
    for key, item in value.items():
        if type(key) is not str or (not key.isascii() and _UTF16_SENSITIVE(key)):
            raise _UseReference
        if type(item) is str:  # most values: no call for them
            continue
        prepared = _prepared(item)
        if prepared is not item:
            if copied is None:
                copied = dict(value)
            copied[key] = prepared
    return value if copied is None else copied


def _prepared_array(value: list[Any]) -> list[Any]:
    copied: list[Any] | None = None
    for index, item in enumerate(value):
        if type(item) is str:
            continue
        prepared = _prepared(item)
        if prepared is not item:
            if copied is None:
                copied = list(value)
            copied[index] = prepared
    return value if copied is None else copied


def es6_number(value: float) -> str:
    """A finite float as ECMAScript's Number::toString writes it, which JCS prescribes.

    Python's ``repr`` gives the same shortest round-trip digits (both choose the closest when
    several are shortest); only the layout differs (``1e-07``, ``1.0``, ``1.2e+20`` here;
    ``1e-7``, ``1``, ``120000000000000000000`` there). Raises ``rfc8785.FloatDomainError``
    for NaN and infinities, as the reference does.
    """
    if not math.isfinite(value):
        raise rfc8785.FloatDomainError(value)
    if value == 0:
        return "0"  # -0 included
    text = repr(value)
    if "e" not in text:  # plain notation: the same layout, but for a trailing ".0"
        return text[:-2] if text.endswith(".0") else text
    sign = "-" if text[0] == "-" else ""
    mantissa, _, exponent = text.lstrip("-").partition("e")
    whole, _, fraction = mantissa.partition(".")
    # value = 0.d1d2...dk x 10^n, as ECMAScript states its algorithm
    all_digits = whole + fraction
    significant = all_digits.lstrip("0")
    n = len(whole) - (len(all_digits) - len(significant)) + int(exponent or 0)
    digits = significant.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    exp = n - 1
    rest = "." + digits[1:] if k > 1 else ""
    return f"{sign}{digits[0]}{rest}e{'+' if exp >= 0 else '-'}{abs(exp)}"
