"""Protection: the codecs of one key ring, in the mapper's order, with the adoption mode."""

from __future__ import annotations

from typing import Annotated

import pytest

import tor_async_couchdb as tac
from support.protect import decode, encode, ring
from tor_async_couchdb._exceptions import UnprotectedField, UnsignedDocument
from tor_async_couchdb._protect import (
    SIGNATURE_FIELD,
    Ed25519Signer,
    Encrypted,
    EncryptedCodec,
    Hashed,
    HashedCodec,
    HashedSecret,
    Protection,
    SignatureCodec,
)


class Member(tac.Model, type_name="member", version="1.0"):
    name: str
    email: Annotated[str, Encrypted()]
    password: Annotated[HashedSecret | None, Hashed()] = None


def test_codecs_come_in_the_mappers_order() -> None:
    protection = Protection.from_keyring(ring("k1"))
    assert [type(c) for c in protection.field_codecs] == [HashedCodec, EncryptedCodec]
    assert [type(c) for c in protection.document_codecs] == [SignatureCodec]
    assert protection.rotator().cipher is protection.encrypted.cipher


async def test_adoption_reads_legacy_documents_and_protects_them_at_the_next_write() -> None:
    legacy = {"_id": "m1", "_rev": "1-a", "type": "member_v1.0", "name": "n", "email": "a@b.c"}
    with pytest.raises(UnsignedDocument):
        decode(Protection.from_keyring(ring("k1")), Member, dict(legacy))
    adopting = Protection.from_keyring(ring("k1"), adopt=True)
    member = decode(adopting, Member, dict(legacy))
    assert member.email == "a@b.c"
    rewritten = await encode(adopting, member)
    assert SIGNATURE_FIELD in rewritten
    assert "ct" in rewritten["email"]
    assert decode(Protection.from_keyring(ring("k1")), Member, rewritten) == member


def test_adoption_still_refuses_a_plaintext_where_a_hash_must_be() -> None:
    legacy = {"_id": "m1", "type": "member_v1.0", "name": "n", "email": "e", "password": "pw"}
    with pytest.raises(UnprotectedField, match="'password'"):
        decode(Protection.from_keyring(ring("k1"), adopt=True), Member, legacy)


async def test_an_ed25519_signer_replaces_the_hmac_one() -> None:
    keys = ring("k1")
    protection = Protection.from_keyring(keys, signer=Ed25519Signer.from_keyring(keys))
    stored = await encode(protection, Member(id="m1", name="n", email="a@b.c"))
    assert stored[SIGNATURE_FIELD]["alg"] == "EdDSA"
    assert decode(protection, Member, stored).email == "a@b.c"


async def test_a_protected_read_leaves_the_stored_document_as_it_is() -> None:
    # The mapper hands the stored document to the signature codec without a copy of its own
    # (the codec decodes to a copy): the field codecs must not write into the stored one.
    import copy

    from tor_async_couchdb._store._mapper import Mapper

    mapper = Mapper(Protection.from_keyring(ring("k1")))
    stored, _ = await mapper.document(Member(id="m1", name="n", email="a@b.c"))
    before = copy.deepcopy(stored)
    member = mapper.model(Member, stored)
    assert member.email == "a@b.c"
    assert stored == before
