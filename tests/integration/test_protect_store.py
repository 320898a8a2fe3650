"""Protected models through the store's public API, against the embedded server.

A client made with ``codecs=Protection.from_keyring(ring)`` hashes, encrypts and signs on every
write and verifies and decrypts on every read path. The documents are then edited directly
over HTTP (the raw document API, as an administrator would) and read back through the store:
each edit is detected, naming the document and never a key or a plaintext.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

import pytest

import tor_async_couchdb as tac
from conftest import unique_db_name
from support.eventually import collections_show, eventually, views_caught_up
from support.protect import ring
from tor_async_couchdb._exceptions import (
    DecryptionFailed,
    ProtectionError,
    RetiredKeyError,
    UnknownKeyError,
    UnprotectedField,
    UnsignedDocument,
)
from tor_async_couchdb._protect import SIGNATURE_FIELD, KeyRing

if TYPE_CHECKING:  # (a pytest plugin: imported by pytest first)
    from tor_async_couchdb.testing import CouchServer

Doc = dict[str, Any]


class Customer(tac.Model, type_name="customer", version="1.0"):
    name: Annotated[str, tac.Indexed()]
    email: Annotated[str, tac.Indexed(), tac.Encrypted(blind_index=True)]
    phone: Annotated[str, tac.Encrypted()]
    password: Annotated[tac.HashedSecret | None, tac.Hashed()] = None


def protection(keyring: KeyRing | None = None, **options: Any) -> tac.Protection:
    return tac.Protection.from_keyring(keyring or ring("k1"), **options)


async def open_db(
    server: CouchServer, codecs: tac.Protection, name: str, **options: Any
) -> tuple[tac.CouchDB, tac.Database]:
    couch = tac.CouchDB(server.url, auth=server.auth, codecs=codecs, **options)
    return couch, couch.database(name)


@pytest.fixture
async def name(couch: tac.CouchDB) -> AsyncIterator[str]:
    """A new database with the customers' views, deleted after the test."""
    db = couch.database(unique_db_name("protect"))
    await db.create()
    await db.install_views(Customer)
    try:
        yield db.name
    finally:
        await db.delete_database(missing_ok=True)


@pytest.fixture
async def store(couch_server: CouchServer, name: str) -> AsyncIterator[tac.Database]:
    """A protected handle (key ring k1) of the test's database."""
    couch, db = await open_db(couch_server, protection(), name)
    async with couch:
        yield db


def customer(n: int, **values: Any) -> Customer:
    fields = {"name": f"n{n}", "email": f"c{n}@example.com", "phone": f"555-{n}"}
    return Customer(id=f"c{n}", **{**fields, **values})


async def saved_customers(db: tac.Database, count: int) -> list[Customer]:
    return [await db.save(customer(n)) for n in range(count)]


# -- every read and write path ----------------------------------------------------------------


async def test_save_get_update_delete_of_a_protected_model(store: tac.Database) -> None:
    saved = await store.save(customer(1, password=tac.HashedSecret.new("hunter22")))
    raw = await store.get_doc("c1")
    assert raw[SIGNATURE_FIELD]["kid"] == "k1"
    assert raw["email"]["kid"] == "k1"
    assert "bi" in raw["email"]
    assert "bi" not in raw["phone"]
    text = str(raw)
    assert "c1@example.com" not in text
    assert "555-1" not in text
    assert "hunter22" not in text
    assert raw["password"].startswith("$argon2id$")
    read = await store.get(Customer, "c1")
    assert (read.email, read.phone) == ("c1@example.com", "555-1")
    assert read.password is not None
    assert await read.password.verify("hunter22")
    assert read.password == saved.password  # a get then save never hashes the PHC string again
    updated = await store.update(Customer, "c1", lambda c: c.model_copy(update={"phone": "556"}))
    assert (await store.get(Customer, "c1")).phone == "556"
    assert (await store.get_doc("c1"))["password"] == raw["password"]
    await store.delete(updated)
    with pytest.raises(tac.NotFound):
        await store.get(Customer, "c1")
    deletion = await store.get_doc("c1", rev=await current_rev(store, "c1"))
    assert deletion["_deleted"] is True
    assert SIGNATURE_FIELD in deletion


async def current_rev(db: tac.Database, doc_id: str) -> str:
    changes, _ = await db.changes(doc_ids=[doc_id])
    return str(changes[0]["changes"][0]["rev"])


async def test_every_collection_read_decrypts(store: tac.Database) -> None:
    await views_caught_up(store, Customer, await saved_customers(store, 3))
    emails = {f"c{n}@example.com" for n in range(3)}
    assert {c.email async for c in store.all(Customer)} == emails
    assert [c.phone async for c in store.get_many(Customer, ["c2", "c0"])] == ["555-2", "555-0"]
    assert [c.id async for c in store.query(Customer, email="c1@example.com")] == ["c1"]
    assert [c.email async for c in store.query(Customer, name="n2")] == ["c2@example.com"]
    ranged = store.query_range(Customer, "name", start="n1")
    assert [c.phone async for c in ranged] == ["555-1", "555-2"]
    assert [c.id for c in await store.most_recent(Customer, "name")] == ["c2"]
    found = store.find_models(Customer, {"name": "n0"})
    assert [c.email async for c in found] == ["c0@example.com"]


async def test_a_changes_reader_verifies_through_the_mapper(store: tac.Database) -> None:
    await saved_customers(store, 2)
    changes, _ = await store.changes(include_docs=True)
    docs = [c["doc"] for c in changes if c["id"].startswith("c")]
    assert sorted(c.email for c in store.mapper.models(Customer, docs)) == [
        "c0@example.com",
        "c1@example.com",
    ]
    await store.put_doc({**docs[0], "name": "eve"})  # an administrator's edit
    changes, _ = await store.changes(include_docs=True, doc_ids=[docs[0]["_id"]])
    with pytest.raises(tac.TamperedDocument):
        store.mapper.model(Customer, changes[0]["doc"])


# -- the direct edits of the issue, detected through the store --------------------------------


def edit(change: Callable[[Doc], None]) -> Callable[[tac.Database, Doc], Awaitable[str]]:
    async def apply(db: tac.Database, doc: Doc) -> str:
        change(doc)
        await db.put_doc(doc)  # over HTTP, with the current _rev, no codec involved
        return str(doc["_id"])

    return apply


async def copy_to_new_id(db: tac.Database, doc: Doc) -> str:
    await db.put_doc({**{k: v for k, v in doc.items() if k != "_rev"}, "_id": "c-copy"})
    return "c-copy"


async def ciphertext_of_another_document(db: tac.Database, doc: Doc) -> str:
    other = await db.get_doc("c2")
    return await edit(lambda d: d.update(email=other["email"]))(db, doc)


def swap_fields(doc: Doc) -> None:
    doc["email"], doc["phone"] = doc["phone"], doc["email"]


def set_kid(kid: str) -> Callable[[Doc], None]:
    return lambda doc: doc[SIGNATURE_FIELD].update(kid=kid)


Case = tuple[Callable[[tac.Database, Doc], Awaitable[str]], type[ProtectionError]]

# The table of docs/protection.md ("What is detected"), through the store.
CASES: dict[str, Case] = {
    "change a signed field": (edit(lambda d: d.update(name="eve")), tac.TamperedDocument),
    "add a field": (edit(lambda d: d.update(admin=True)), tac.TamperedDocument),
    "delete a field": (edit(lambda d: d.pop("phone")), tac.TamperedDocument),
    "change a field's type": (edit(lambda d: d.update(name=["n1"])), tac.TamperedDocument),
    "change type": (edit(lambda d: d.update(type="customer_v0.9")), tac.TamperedDocument),
    "copy the body to a new _id": (copy_to_new_id, tac.TamperedDocument),
    "strip the signature": (edit(lambda d: d.pop(SIGNATURE_FIELD)), UnsignedDocument),
    "change the key id": (edit(set_kid("k2")), UnknownKeyError),
    "plaintext in an encrypted field": (
        edit(lambda d: d.update(email="c1@example.com")),
        tac.TamperedDocument,
    ),
    "ciphertext of another document": (ciphertext_of_another_document, tac.TamperedDocument),
    "swap two encrypted fields": (edit(swap_fields), tac.TamperedDocument),
    "edit a blind index": (edit(lambda d: d["email"].update(bi="A" * 22)), tac.TamperedDocument),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_direct_edits_are_detected_through_the_store(store: tac.Database, case: str) -> None:
    await saved_customers(store, 3)
    change, error = CASES[case]
    doc_id = await change(store, await store.get_doc("c1"))
    await collections_show(store, Customer, {doc_id: (await store.get_doc(doc_id))["_rev"]})
    with pytest.raises(error) as caught:
        await store.get(Customer, doc_id)
    assert caught.value.doc_id == doc_id
    for secret in ("c1@example.com", "555-1", "\\x01"):
        assert secret not in str(caught.value)
    with pytest.raises(error):  # collections raise too, by default: never returned silently
        _ = [c async for c in store.all(Customer)]
    with pytest.raises(error):
        _ = [c async for c in store.get_many(Customer, [doc_id])]


async def test_key_id_changed_to_another_live_key_is_tampering(
    couch_server: CouchServer, name: str
) -> None:
    couch, db = await open_db(couch_server, protection(ring("k1", "k2")), name)
    async with couch:
        await db.save(customer(1))
        await edit(set_kid("k2"))(db, await db.get_doc("c1"))
        with pytest.raises(tac.TamperedDocument) as caught:
            await db.get(Customer, "c1")
        assert caught.value.doc_id == "c1"


async def test_the_fields_catch_edits_even_where_the_signature_is_not_checked(
    couch_server: CouchServer, name: str
) -> None:
    # Adoption mode reads unsigned documents: the encrypted fields still refuse edits.
    couch, db = await open_db(couch_server, protection(adopt=True), name)
    async with couch:
        await saved_customers(db, 3)
        await edit(swap_fields)(db, await db.get_doc("c1"))
        other = await db.get_doc("c2")
        await edit(lambda d: d.update(email=other["email"]))(db, await db.get_doc("c0"))
        for doc_id in ("c0", "c1"):
            stripped = await db.get_doc(doc_id)
            await edit(lambda d: d.pop(SIGNATURE_FIELD))(db, stripped)
            with pytest.raises(DecryptionFailed) as caught:
                await db.get(Customer, doc_id)
            assert caught.value.doc_id == doc_id


# -- quarantine --------------------------------------------------------------------------------


async def test_quarantine_skips_logs_and_counts_tampered_documents(
    couch_server: CouchServer, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    couch, db = await open_db(couch_server, protection(), name, quarantine=True)
    async with couch:
        await saved_customers(db, 4)
        await edit(lambda d: d.update(name="eve"))(db, await db.get_doc("c1"))
        await edit(lambda d: d.update(email="c2@example.com"))(db, await db.get_doc("c2"))
        revs = {f"c{n}": (await db.get_doc(f"c{n}"))["_rev"] for n in range(4)}
        await collections_show(db, Customer, revs, indexes=["name"])
        assert couch.stats().quarantined == 0
        with caplog.at_level(logging.ERROR, logger="tor_async_couchdb.protect"):
            listed = [c.id async for c in db.all(Customer)]
        assert listed == ["c0", "c3"]
        assert couch.stats().quarantined == 2
        records = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert [getattr(r, "doc_id", None) for r in records] == ["c1", "c2"]
        assert "c2@example.com" not in caplog.text
        assert [c.id async for c in db.query(Customer, name="eve")] == []
        assert [c.id async for c in db.get_many(Customer, ["c1", "c3"])] == ["c3"]
        assert [c.id async for c in db.find_models(Customer, {"name": "eve"})] == []
        assert [c.id async for c in db.all(Customer, limit=2)] == ["c0", "c3"]
        assert couch.stats().quarantined == 7
        with pytest.raises(tac.TamperedDocument):  # one document asked for by id still raises
            await db.get(Customer, "c1")
        strict = couch.database(name, quarantine=False)
        assert strict.quarantine is False
        assert db.quarantine is True
        with pytest.raises(tac.TamperedDocument):
            _ = [c async for c in strict.all(Customer)]


# -- markers that a field cannot carry ---------------------------------------------------------


class HashedName(tac.Model, type_name="hashed_name", version="1.0"):
    name: Annotated[str, tac.Hashed()]


class EncryptedPassword(tac.Model, type_name="encrypted_password", version="1.0"):
    password: Annotated[tac.HashedSecret, tac.Encrypted()]


class IndexedEncrypted(tac.Model, type_name="indexed_encrypted", version="1.0"):
    email: Annotated[str, tac.Indexed(), tac.Encrypted()]


@pytest.mark.parametrize(
    ("model", "values"),
    [
        (HashedName, {"name": "x"}),
        (EncryptedPassword, {"password": tac.HashedSecret.new("x")}),
        (IndexedEncrypted, {"email": "a@b.c"}),
    ],
    ids=["Hashed on str", "Encrypted on HashedSecret", "Indexed Encrypted without blind index"],
)
async def test_a_marker_the_field_cannot_carry_is_refused_before_any_write(
    store: tac.Database, model: type[tac.Model], values: dict[str, Any]
) -> None:
    with pytest.raises(tac.ModelDefinitionError) as caught:
        await store.save(model(id="x1", **values))
    assert model.__qualname__ in str(caught.value)
    with pytest.raises(tac.ModelDefinitionError):  # reading too: the mapper checks first
        store.mapper.model(model, {"_id": "x1", "type": f"{model.couch_info().type_string}"})
    with pytest.raises(tac.NotFound):
        await store.get_doc("x1")  # nothing written


@pytest.mark.parametrize(
    ("codecs", "field", "marker"),
    [
        ("none", "email", "Encrypted"),
        ("signature", "email", "Encrypted"),
        ("hashing", "email", "Encrypted"),
        ("encryption", "password", "Hashed"),
    ],
    ids=["no codecs", "only signed", "only hashing", "no hashing"],
)
async def test_a_protected_model_without_its_codec_is_refused_before_any_write(
    couch_server: CouchServer, name: str, codecs: str, field: str, marker: str
) -> None:
    bundle = protection()
    chosen: dict[str, list[tac.FieldCodec | tac.DocumentCodec]] = {
        "none": [],
        "signature": [bundle.signature],
        "hashing": [bundle.hashed],
        "encryption": [bundle.encrypted, bundle.signature],
    }
    full_couch, full = await open_db(couch_server, bundle, name)
    async with full_couch:
        await full.save(customer(2))
    couch = tac.CouchDB(couch_server.url, auth=couch_server.auth, codecs=chosen[codecs])
    secret = tac.HashedSecret.new("hunter22")
    async with couch:
        db = couch.database(name)
        for write in (
            lambda: db.save(customer(1, password=secret)),
            lambda: db.save_many([customer(1, password=secret)]),
        ):
            with pytest.raises(tac.ConfigurationError) as caught:
                await write()
            assert f"Customer.{field}" in str(caught.value)
            assert marker in str(caught.value)
        with pytest.raises(tac.ConfigurationError):  # reading and querying too
            await db.get(Customer, "c2")
        with pytest.raises(tac.ConfigurationError):
            [c async for c in db.query(Customer, email="c2@example.com")]
        with pytest.raises(tac.NotFound):
            await db.get_doc("c1")  # nothing written


async def test_plain_markers_need_no_codec(db: tac.Database) -> None:
    class Tagged(tac.Model, type_name="tagged", version="1.0"):
        name: Annotated[str, tac.Indexed()]

    saved = await db.save(Tagged(id="t1", name="n"))
    assert (await db.get(Tagged, "t1")).name == saved.name == "n"


# -- blind-index views --------------------------------------------------------------------------


async def test_the_generated_view_emits_blind_indexes_only(store: tac.Database) -> None:
    saved = await saved_customers(store, 3)
    await views_caught_up(
        store, Customer, [*saved, await store.save(customer(3, email="c1@example.com"))]
    )
    rows = [r async for r in store.view("customer_by_email", "customer_by_email")]
    assert len(rows) == 4
    assert "example.com" not in str(rows)
    assert all(isinstance(r["key"], str) and len(r["key"]) == 22 for r in rows)
    raw = [r async for r in store.view("customer_by_email", "customer_by_email", include_docs=True)]
    assert {r["key"] for r in raw} == {r["doc"]["email"]["bi"] for r in raw}
    assert sorted([str(c.id) async for c in store.query(Customer, email="c1@example.com")]) == [
        "c1",
        "c3",
    ]
    with pytest.raises(tac.InvalidInputError):  # a blind index answers equality, not ranges
        store.query_range(Customer, "email", start="a")


async def test_blind_index_lookups_find_documents_under_every_live_key(
    couch_server: CouchServer, name: str
) -> None:
    old_couch, old = await open_db(couch_server, protection(ring("k1")), name)
    async with old_couch:
        await old.save(customer(1, email="same@example.com"))
    new_couch, new = await open_db(couch_server, protection(ring("k2", "k1")), name)
    async with new_couch:
        await new.save(customer(2, email="same@example.com"))
        assert (await new.get_doc("c2"))["email"]["kid"] == "k2"

        async def both_found() -> bool:
            found = [str(c.id) async for c in new.query(Customer, email="same@example.com")]
            return sorted(found) == ["c1", "c2"]

        await eventually(both_found)  # (at once on one node; a cluster's copies may lag)


# -- rotation -----------------------------------------------------------------------------------


async def test_rotate_moves_every_document_to_the_active_key(
    couch_server: CouchServer, name: str
) -> None:
    old_couch, old = await open_db(couch_server, protection(ring("k1")), name)
    async with old_couch:
        saved = await saved_customers(old, 5)
    couch, db = await open_db(couch_server, protection(ring("k2", "k1")), name)
    async with couch:
        saved.append(await db.save(customer(9)))  # new writes use the new key at once
        await views_caught_up(db, Customer, saved)
        assert (await db.get_doc("c9"))[SIGNATURE_FIELD]["kid"] == "k2"
        assert (await db.get(Customer, "c0")).email == "c0@example.com"  # old ones still read
        reports: list[tac.RotationProgress] = []
        final = await db.rotate(Customer, page_size=2, progress=reports.append)
        assert (final.seen, final.rotated, final.done) == (6, 5, True)
        assert [r.seen for r in reports] == [2, 4, 6, 6]
        for n in (0, 1, 2, 3, 4, 9):
            doc = await db.get_doc(f"c{n}")
            kids = {doc[SIGNATURE_FIELD]["kid"], doc["email"]["kid"], doc["phone"]["kid"]}
            assert kids == {"k2"}
        revs = {f"c{n}": (await db.get_doc(f"c{n}"))["_rev"] for n in (0, 1, 2, 3, 4, 9)}
        await collections_show(db, Customer, revs)
        again = await db.rotate(Customer)
        assert (again.seen, again.rotated) == (6, 0)
        with pytest.raises(tac.NotFound):
            await db.get_doc(f"tac_checkpoint_rotate_customer_to_{final.key_id}")
    retired_couch, retired = await open_db(
        couch_server, protection(ring("k2", retired=("k1",))), name
    )
    async with retired_couch:  # after rotate, retiring the old key loses nothing
        assert len([c async for c in retired.all(Customer)]) == 6
        assert len([c async for c in retired.query(Customer, email="c3@example.com")]) == 1


async def test_rotate_re_signs_deletion_stubs(couch_server: CouchServer, name: str) -> None:
    old_couch, old = await open_db(couch_server, protection(ring("k1")), name)
    async with old_couch:
        first, second, _ = await saved_customers(old, 3)
        await old.delete(first)
        await old.delete(second)
    bundle = protection(ring("k2", "k1"))
    couch, db = await open_db(couch_server, bundle, name)
    async with couch:
        final = await db.rotate(Customer, page_size=2)
        assert (final.seen, final.rotated, final.tombstones) == (1, 1, 2)
        for doc_id in ("c0", "c1"):
            stub = await db.get_doc(doc_id, rev=await current_rev(db, doc_id))
            assert stub["_deleted"] is True
            assert stub[SIGNATURE_FIELD]["kid"] == "k2"
            assert bundle.signature.verify(stub)["_deleted"] is True  # a valid signed deletion
        again = await db.rotate(Customer)
        assert again.tombstones == 0  # nothing written twice
        with pytest.raises(tac.NotFound):
            await db.get(Customer, "c0")  # still deleted


async def test_rotate_in_adoption_mode_encrypts_plaintext_fields(
    couch_server: CouchServer, name: str
) -> None:
    couch, db = await open_db(couch_server, protection(adopt=True), name)
    async with couch:
        legacy = {"_id": "c1", "type": "customer_v1.0", "name": "n1"}
        await db.put_doc({**legacy, "email": "old@example.com", "phone": "555"})
        final = await db.rotate(Customer)
        assert (final.seen, final.rotated) == (1, 1)
        stored = await db.get_doc("c1")
        assert stored[SIGNATURE_FIELD]["kid"] == "k1"
        assert stored["email"]["kid"] == stored["phone"]["kid"] == "k1"
        assert "old@example.com" not in str(stored)
        assert "555" not in str(stored["phone"])
        assert (await db.rotate(Customer)).rotated == 0
    strict_couch, strict = await open_db(couch_server, protection(), name)
    async with strict_couch:  # protected now: the strict mode reads it, and finds it
        read = await strict.get(Customer, "c1")
        assert (read.email, read.phone) == ("old@example.com", "555")
        found = [str(c.id) async for c in strict.query(Customer, email="old@example.com")]
        assert found == ["c1"]


async def test_an_interrupted_rotate_resumes_without_redoing_finished_pages(
    couch_server: CouchServer, name: str
) -> None:
    old_couch, old = await open_db(couch_server, protection(ring("k1")), name)
    async with old_couch:
        await views_caught_up(old, Customer, await saved_customers(old, 6))
    couch, db = await open_db(couch_server, protection(ring("k2", "k1")), name)
    async with couch:

        def interrupt(step: tac.RotationProgress) -> None:
            if step.seen == 4:
                raise RuntimeError("interrupted")

        with pytest.raises(RuntimeError, match="interrupted"):
            await db.rotate(Customer, page_size=2, progress=interrupt)
        revs = {f"c{n}": (await db.get_doc(f"c{n}"))["_rev"] for n in range(4)}
        # A finished page read again would fail here: this edit would be met as tampering.
        await edit(lambda d: d.update(name="eve"))(db, await db.get_doc("c0"))
        reports: list[tac.RotationProgress] = []
        final = await db.rotate(Customer, page_size=2, progress=reports.append)
        assert [(r.seen, r.rotated) for r in reports] == [(6, 6), (6, 6)]
        assert final.done
        assert final.last_key == "c5"
        assert {f"c{n}": (await db.get_doc(f"c{n}"))["_rev"] for n in range(1, 4)} == {
            k: v for k, v in revs.items() if k != "c0"
        }
        assert (await db.get_doc("c5"))["phone"]["kid"] == "k2"


async def test_a_cancelled_rotate_resumes(couch_server: CouchServer, name: str) -> None:
    old_couch, old = await open_db(couch_server, protection(ring("k1")), name)
    async with old_couch:
        await views_caught_up(old, Customer, await saved_customers(old, 4))
    couch, db = await open_db(couch_server, protection(ring("k2", "k1")), name)
    async with couch:

        async def cancel(step: tac.RotationProgress) -> None:
            if step.seen == 2:
                raise asyncio.CancelledError

        with pytest.raises(asyncio.CancelledError):
            await db.rotate(Customer, page_size=2, progress=cancel)
        final = await db.rotate(Customer, page_size=2)
        assert (final.seen, final.rotated) == (4, 4)


async def test_a_key_retired_too_early_gives_the_documented_error(
    couch_server: CouchServer, name: str
) -> None:
    old_couch, old = await open_db(couch_server, protection(ring("k1")), name)
    async with old_couch:
        await saved_customers(old, 2)
    couch, db = await open_db(couch_server, protection(ring("k2", retired=("k1",))), name)
    async with couch:
        with pytest.raises(RetiredKeyError) as caught:
            await db.get(Customer, "c0")
        assert caught.value.doc_id == "c0"
        assert caught.value.key_id == "k1"
        with pytest.raises(RetiredKeyError):
            await db.rotate(Customer)
        assert (await db.get_doc("c0"))[SIGNATURE_FIELD]["kid"] == "k1"  # nothing written


async def test_rotate_needs_signing_codecs(db: tac.Database) -> None:
    with pytest.raises(tac.MissingKeyError):
        await db.rotate(Customer)


async def test_rotate_in_quarantine_mode_skips_tampered_documents(
    couch_server: CouchServer, name: str
) -> None:
    old_couch, old = await open_db(couch_server, protection(ring("k1")), name)
    async with old_couch:
        await saved_customers(old, 3)
        await edit(lambda d: d.update(name="eve"))(old, await old.get_doc("c1"))
        revs = {f"c{n}": (await old.get_doc(f"c{n}"))["_rev"] for n in range(3)}
        await collections_show(old, Customer, revs)
    couch, db = await open_db(couch_server, protection(ring("k2", "k1")), name, quarantine=True)
    async with couch:
        final = await db.rotate(Customer)
        assert (final.seen, final.rotated, final.skipped) == (3, 2, 1)
        assert couch.stats().quarantined == 1
        assert (await db.get_doc("c1"))[SIGNATURE_FIELD]["kid"] == "k1"


# -- adoption -----------------------------------------------------------------------------------


async def test_adoption_reads_unprotected_documents_and_protects_them_at_the_next_write(
    couch_server: CouchServer, name: str
) -> None:
    couch, db = await open_db(couch_server, protection(adopt=True), name)
    async with couch:
        legacy = {"_id": "c1", "type": "customer_v1.0", "name": "n1"}
        await db.put_doc({**legacy, "email": "old@example.com", "phone": "555"})
        read = await db.get(Customer, "c1")
        assert (read.email, read.phone) == ("old@example.com", "555")
        await db.update(Customer, "c1", lambda c: c.model_copy(update={"name": "n2"}))
        stored = await db.get_doc("c1")
        assert SIGNATURE_FIELD in stored
        assert stored["email"]["kid"] == "k1"
        assert "old@example.com" not in str(stored)
    strict_couch, strict = await open_db(couch_server, protection(), name)
    async with strict_couch:  # protected now: the strict mode reads it too
        assert (await strict.get(Customer, "c1")).name == "n2"
        await strict.put_doc({**legacy, "_id": "c2", "email": "x", "phone": "y"})
        with pytest.raises(UnsignedDocument):
            await strict.get(Customer, "c2")


async def test_adoption_never_takes_a_plaintext_for_a_hash(
    couch_server: CouchServer, name: str
) -> None:
    couch, db = await open_db(couch_server, protection(adopt=True), name)
    async with couch:
        await db.put_doc(
            {
                "_id": "c1",
                "type": "customer_v1.0",
                "name": "n",
                "email": "e",
                "phone": "p",
                "password": "hunter22",
            }
        )
        with pytest.raises(UnprotectedField) as caught:
            await db.get(Customer, "c1")
        assert caught.value.field == "password"
        assert "hunter22" not in str(caught.value)
