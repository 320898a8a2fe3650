"""Rotation of one document: re-encrypted and re-signed under the active keys, once."""

from __future__ import annotations

import base64
import hashlib
from typing import Annotated

import pytest

import tor_async_couchdb as tac
from support.protect import decode, encode, ring
from tor_async_couchdb._exceptions import RetiredKeyError, TamperedDocument
from tor_async_couchdb._protect import SIGNATURE_FIELD, Encrypted, Protection


class Customer(tac.Model, type_name="customer", version="1.0"):
    name: str
    email: Annotated[str, tac.Indexed(), Encrypted(blind_index=True)]
    phone: Annotated[str, Encrypted()]


ENCRYPTED = dict(Customer.field_markers(Encrypted))


async def old_document() -> dict[str, object]:
    customer = Customer(id="c1", rev="1-a", name="n", email="a@b.c", phone="555")
    return await encode(Protection.from_keyring(ring("k1")), customer)


def key_ids(doc: dict[str, object]) -> set[object]:
    envelopes = [doc[SIGNATURE_FIELD], doc["email"], doc["phone"]]
    return {envelope["kid"] for envelope in envelopes}  # type: ignore[index]


async def test_rotation_moves_every_key_to_the_active_one_once() -> None:
    doc = await old_document()
    rotated_ring = Protection.from_keyring(ring("k2", "k1"))
    rotator = rotated_ring.rotator()
    assert rotator.needs_rotation(doc, type_name="customer", encrypted=ENCRYPTED)
    new = rotator.rotate(doc, type_name="customer", encrypted=ENCRYPTED)
    assert new is not None
    assert key_ids(new) == {"k2"}
    assert new["_rev"] == "1-a"  # written over the revision it read
    assert rotator.rotate(new, type_name="customer", encrypted=ENCRYPTED) is None  # resumable
    after = Protection.from_keyring(ring("k2", retired=("k1",)))
    assert decode(after, Customer, new).email == "a@b.c"
    with pytest.raises(RetiredKeyError):
        decode(after, Customer, doc)


async def test_new_writes_use_the_new_key_and_old_documents_still_read() -> None:
    protection = Protection.from_keyring(ring("k2", "k1"))
    assert decode(protection, Customer, await old_document()).phone == "555"
    fresh = await encode(protection, Customer(id="c2", name="n", email="x@y.z", phone="1"))
    assert key_ids(fresh) == {"k2"}


async def test_rotation_verifies_first() -> None:
    doc = {**await old_document(), "name": "edited"}
    with pytest.raises(TamperedDocument):
        Protection.from_keyring(ring("k2", "k1")).rotator().rotate(
            doc, type_name="customer", encrypted=ENCRYPTED
        )


def test_rotation_keeps_the_sha256_of_attachments() -> None:
    old = Protection.from_keyring(ring("k1")).signature
    content = base64.b64encode(b"hello").decode()
    signed = old.sign(
        {
            "_id": "a1",
            "type": "x_v1.0",
            "_attachments": {"a": {"content_type": "text/plain", "data": content}},
        }
    )
    md5 = base64.b64encode(hashlib.md5(b"hello", usedforsecurity=False).digest()).decode()
    stub = {"content_type": "text/plain", "digest": f"md5-{md5}", "length": 5, "stub": True}
    read = {**signed, "_attachments": {"a": stub}}
    new = Protection.from_keyring(ring("k2", "k1"))
    rotated = new.rotator().rotate(read, type_name="x", encrypted={})
    assert rotated is not None
    new.signature.verify_attachment(rotated, "a", b"hello")
