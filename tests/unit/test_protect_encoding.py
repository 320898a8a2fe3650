"""The fast canonical form writes exactly the bytes of the rfc8785 reference (or fails alike)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from tor_async_couchdb._protect import associated_data
from tor_async_couchdb._protect._encoding import b64decode, b64encode, canonical, es6_number

keys = st.text(st.characters(codec="utf-8"), max_size=4) | st.sampled_from(
    ["\uffff", "\ue000", "\U0001f600", "\U00010000", "a\x00", "\x7f"]
)
leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8"), max_size=6)
)
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=16,
)


def reference(value: Any) -> bytes | type[Exception]:
    try:
        return rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        return type(exc)


def ours(value: Any) -> bytes | type[Exception]:
    try:
        return canonical(value)
    except rfc8785.CanonicalizationError as exc:
        return type(exc)


@settings(max_examples=400, deadline=None)
@given(values)
def test_canonical_equals_the_reference(value: Any) -> None:
    assert ours(value) == reference(value)


@settings(max_examples=2000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_es6_number_equals_the_reference(value: float) -> None:
    assert es6_number(value).encode() == rfc8785.dumps(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, "1"),
        (-0.0, "0"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (2.0**60, "1152921504606847000"),
        (5e-324, "5e-324"),
    ],
)
def test_es6_number_vectors(value: float, expected: str) -> None:
    assert es6_number(value) == expected


def test_non_finite_floats_are_refused_like_the_reference() -> None:
    with pytest.raises(rfc8785.FloatDomainError):
        canonical([float("nan")])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(st.characters(codec="utf-8")), min_size=4, max_size=4))
def test_associated_data_is_the_rfc8785_form(parts: list[str]) -> None:
    doc_id, type_name, path, key_id = parts
    assert associated_data(doc_id, type_name, path, key_id) == rfc8785.dumps(parts)


def strict_reference(text: str) -> bytes | None:
    """The definition: unpadded base64url whose bytes encode back to the very same text."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    if not all(c in alphabet for c in text) or len(text) % 4 == 1:
        return None
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return data if b64encode(data) == text else None


@settings(max_examples=1000, deadline=None)
@given(
    st.text(alphabet="AQgwBEIMRcz09-_+/= \n", max_size=9) | st.binary(max_size=20).map(b64encode)
)
def test_b64decode_is_strict_unpadded_base64url(text: str) -> None:
    assert b64decode(text) == strict_reference(text)
