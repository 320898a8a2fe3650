"""Encrypted fields: AES-256-GCM envelopes bound to document, type, field and key id."""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from support.protect import ring, secret
from tor_async_couchdb._exceptions import (
    DecryptionFailed,
    InvalidInputError,
    MalformedEnvelope,
    NotJSONError,
    RetiredKeyError,
    TamperedDocument,
    UnknownKeyError,
    UnprotectedField,
)
from tor_async_couchdb._protect import Encrypted, EncryptedCodec, FieldContext, Hashed, Key, KeyRing

MARKER = Encrypted()
INDEXED = Encrypted(blind_index=True)


def context(
    doc_id: str = "d1", field: str = "email", marker: Encrypted = MARKER, type_name: str = "user"
) -> FieldContext:
    return FieldContext(doc_id=doc_id, type_name=type_name, path=field, marker=marker)


async def seal(codec: EncryptedCodec, value: Any, where: FieldContext | None = None) -> Any:
    return await codec.encode(value, where or context())


def unpadded_b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


JSON_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**53,
    2**63 - 1,
    1.5,
    -2.5e-300,
    "",
    "a@b.c",
    "h\u00e9llo \U0001f600 e\u0301",
    [],
    [1, "a", None, [True]],
    {},
    {"a": {"b": [1, 2.5]}, "\U0001f600": "x"},
]


@pytest.mark.parametrize("value", JSON_VALUES, ids=repr)
async def test_every_json_value_round_trips(value: Any) -> None:
    codec = EncryptedCodec(ring("k1"))
    envelope = await seal(codec, value)
    assert set(envelope) == {"v", "alg", "kid", "iv", "ct"}
    assert codec.decode(envelope, context()) == value


# Integers within JSON's safe range: a blind index is over the RFC 8785 form, which has none
# beyond it (test_blind_index_refuses_unsafe_integers).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(
    value=json_values,
    doc_id=st.text(min_size=1),
    field=st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
)
def test_hypothesis_round_trip(value: Any, doc_id: str, field: str) -> None:
    codec = EncryptedCodec(ring("k1"))
    where = context(doc_id, field, INDEXED)
    envelope = codec.cipher.encrypt(value, where, INDEXED)
    assert codec.decode(envelope, where) == value


async def test_decrypts_by_hand_with_aesgcm_and_the_documented_derivation() -> None:
    codec = EncryptedCodec(ring("k1"))
    envelope = await seal(codec, "a@b.c")
    # Written from docs/protection.md, not from the library's helpers.
    info = json.dumps(
        ["tor-async-couchdb/1", "field-encryption", "user", "email"], separators=(",", ":")
    ).encode()
    key = HKDF(algorithm=SHA256(), length=32, salt=None, info=info).derive(secret(1))
    aad = json.dumps(["d1", "user", "email", "k1"], separators=(",", ":")).encode()
    plaintext = AESGCM(key).decrypt(unpadded_b64(envelope["iv"]), unpadded_b64(envelope["ct"]), aad)
    assert plaintext == b'"a@b.c"' + b" " * 9  # padded to 16 bytes
    assert json.loads(plaintext) == "a@b.c"


async def test_stored_form_holds_no_substring_of_the_plaintext() -> None:
    plaintext = "correct horse battery staple"
    stored = orjson.dumps(await seal(EncryptedCodec(ring("k1")), plaintext)).decode()
    windows = {plaintext[i : i + 5] for i in range(len(plaintext) - 4)}
    assert [w for w in windows if w in stored] == []


async def test_two_encryptions_of_one_value_differ() -> None:
    codec = EncryptedCodec(ring("k1"))
    first, second = await seal(codec, "same"), await seal(codec, "same")
    assert first["iv"] != second["iv"]
    assert first["ct"] != second["ct"]


async def test_padding_hides_the_length_of_short_values() -> None:
    codec = EncryptedCodec(ring("k1"))
    lengths = {len((await seal(codec, value))["ct"]) for value in (True, False, None, 7, "abc")}
    assert len(lengths) == 1


@pytest.mark.parametrize(
    "elsewhere",
    [
        context(doc_id="d2"),  # another document
        context(field="phone"),  # another field
        context(type_name="customer"),  # another model
    ],
    ids=["other-document", "other-field", "other-type"],
)
async def test_ciphertext_copied_elsewhere_fails(elsewhere: FieldContext) -> None:
    codec = EncryptedCodec(ring("k1"))
    envelope = await seal(codec, "a@b.c")
    with pytest.raises(DecryptionFailed) as caught:
        codec.decode(envelope, elsewhere)
    assert caught.value.doc_id == elsewhere.doc_id
    assert caught.value.field == elsewhere.path
    assert "a@b.c" not in str(caught.value)


async def test_swapping_two_fields_of_one_document_fails() -> None:
    codec = EncryptedCodec(ring("k1"))
    doc = {
        "email": await seal(codec, "a@b.c"),
        "phone": await seal(codec, "555", context(field="phone")),
    }
    doc["email"], doc["phone"] = doc["phone"], doc["email"]
    for field in ("email", "phone"):
        with pytest.raises(DecryptionFailed):
            codec.decode(doc[field], context(field=field))


async def test_relabelled_key_id_fails() -> None:
    codec = EncryptedCodec(ring("k2", "k1"))
    envelope = {**await seal(codec, "a@b.c"), "kid": "k1"}
    with pytest.raises(DecryptionFailed, match="'k1'"):
        codec.decode(envelope, context())


async def test_older_keys_read_and_retired_or_unknown_keys_are_refused() -> None:
    old = await seal(EncryptedCodec(ring("k1")), "a@b.c")
    assert EncryptedCodec(ring("k2", "k1")).decode(old, context()) == "a@b.c"
    with pytest.raises(RetiredKeyError):
        EncryptedCodec(ring("k2", retired=("k1",))).decode(old, context())
    with pytest.raises(UnknownKeyError):
        EncryptedCodec(ring("k2")).decode(old, context())


async def test_a_wrong_secret_under_the_same_id_fails() -> None:
    envelope = await seal(EncryptedCodec(ring("k1")), "a@b.c")
    impostor = EncryptedCodec(KeyRing([Key("k1", secret(3))], active="k1"))
    with pytest.raises(DecryptionFailed):
        impostor.decode(envelope, context())


@pytest.mark.parametrize(
    "edit",
    [
        lambda e: {k: v for k, v in e.items() if k != "iv"},
        lambda e: {**e, "extra": 1},
        lambda e: {**e, "v": 2},
        lambda e: {**e, "v": True},
        lambda e: {**e, "alg": "A128GCM"},
        lambda e: {**e, "iv": e["iv"][:-2]},
        lambda e: {**e, "iv": "!!not base64!!"},
        lambda e: {**e, "ct": "AAAA"},
        lambda e: {**e, "kid": 7},
    ],
    ids=[
        "missing-iv",
        "extra-member",
        "version",
        "version-true",
        "algorithm",
        "short-nonce",
        "bad-base64",
        "short-ciphertext",
        "key-id-type",
    ],
)
async def test_malformed_envelopes_are_typed_errors(edit: Any) -> None:
    codec = EncryptedCodec(ring("k1"))
    with pytest.raises(MalformedEnvelope) as caught:
        codec.decode(edit(await seal(codec, "a@b.c")), context())
    assert (caught.value.doc_id, caught.value.field) == ("d1", "email")


@pytest.mark.parametrize("plaintext", ["a@b.c", {"a": 1}, None, 3])
def test_plaintext_in_an_encrypted_field_is_refused(plaintext: Any) -> None:
    with pytest.raises(UnprotectedField, match="'email'"):
        EncryptedCodec(ring("k1")).decode(plaintext, context())


async def test_adoption_mode_reads_plaintext_but_still_checks_envelopes() -> None:
    codec = EncryptedCodec(ring("k1"), accept_plaintext=True)
    assert codec.decode("legacy@b.c", context()) == "legacy@b.c"
    envelope = await seal(codec, "a@b.c")
    with pytest.raises(DecryptionFailed):
        codec.decode(envelope, context(doc_id="d2"))


async def test_blind_index_per_value_field_and_live_key() -> None:
    codec = EncryptedCodec(ring("k2", "k1"))
    where = context(marker=INDEXED)
    envelope = await seal(codec, "a@b.c", where)
    keys = codec.index_keys("a@b.c", where)
    assert keys is not None
    assert len(keys) == 2
    assert keys[0] == envelope["bi"]
    assert len(unpadded_b64(envelope["bi"])) == 16  # 128 bits (see _cipher)
    assert codec.index_keys("A@b.c", where) != keys
    assert codec.index_keys("a@b.c", context(field="phone", marker=INDEXED)) != keys
    assert codec.index_keys("a@b.c", context()) is None  # a field without a blind index
    old = await seal(EncryptedCodec(ring("k1")), "a@b.c", where)
    assert old["bi"] == keys[1]  # documents not rotated yet are found by the old key's index


async def test_an_edited_blind_index_is_tampering() -> None:
    codec = EncryptedCodec(ring("k1"))
    where = context(marker=INDEXED)
    other = (await seal(codec, "b@b.c", where))["bi"]
    with pytest.raises(TamperedDocument, match="blind index"):
        codec.decode({**await seal(codec, "a@b.c", where), "bi": other}, where)


async def test_codec_refuses_another_marker() -> None:
    with pytest.raises(InvalidInputError):
        await EncryptedCodec(ring("k1")).encode("x", context(marker=Hashed()))  # type: ignore[arg-type]


def test_pad_is_checked() -> None:
    with pytest.raises(InvalidInputError):
        Encrypted(pad=0)
    assert Encrypted().view_member is None
    assert INDEXED.view_member == "bi"


def test_blind_index_refuses_unsafe_integers() -> None:
    codec = EncryptedCodec(ring("k1"))
    with pytest.raises(NotJSONError, match="'email'"):
        codec.index_keys(2**53, context(marker=INDEXED))
