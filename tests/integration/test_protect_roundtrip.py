"""Protected documents through the embedded server: signed documents written raw, read back
and verified (canonicalization survives the round trip), then edited directly over HTTP as an
administrator would, and the edits detected."""

from __future__ import annotations

import base64
import secrets
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tor_async_couchdb as tac
from support.eventually import eventually
from support.protect import decode, encode, ring
from tor_async_couchdb._exceptions import (
    DecryptionFailed,
    ProtectionError,
    TamperedDocument,
    UnknownKeyError,
    UnprotectedField,
    UnsignedDocument,
)
from tor_async_couchdb._protect import (
    SIGNATURE_FIELD,
    DocumentContext,
    Encrypted,
    FieldContext,
    Hashed,
    HashedSecret,
    Protection,
    security_object,
    validate_doc_update_design,
)

if TYPE_CHECKING:  # (a pytest plugin: imported by pytest first)
    from tor_async_couchdb.testing import CouchServer

Doc = dict[str, Any]


class Customer(tac.Model, type_name="customer", version="1.0"):
    name: str
    email: Annotated[str, tac.Indexed(), Encrypted(blind_index=True)]
    phone: Annotated[str, Encrypted()]
    password: Annotated[HashedSecret | None, Hashed()] = None


def protection() -> Protection:
    return Protection.from_keyring(ring("k1", "k2"))


# JSON that JCS can canonicalize and JSON servers keep: integers within 2^53, finite floats,
# any string (NFD included), keys outside the Basic Multilingual Plane.
utf8 = st.characters(codec="utf-8")  # (no lone surrogates: JSON cannot hold them)
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=utf8, max_size=8)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.text(alphabet=st.characters(codec="utf-8"), max_size=4), inner, max_size=3
        )
    ),
    max_leaves=8,
)
bodies = st.dictionaries(
    st.from_regex(r"[a-z\U0001f600-\U0001f64f]{1,6}", fullmatch=True), json_values, max_size=5
)


def collect_bodies(count: int) -> list[Doc]:
    found: list[Doc] = []

    # Drawn in a plain function (hypothesis runs no coroutines), then written one by one.
    @settings(
        max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(bodies)
    def draw(body: Doc) -> None:
        found.append(body)

    draw()
    return found


async def put_and_get(db: tac.Database, doc: Doc) -> Doc:
    saved = await db.put_doc(doc)
    return await db.get_doc(saved["id"])


async def test_canonical_form_survives_the_server(db: tac.Database) -> None:
    codec = protection().signature
    for n, body in enumerate(collect_bodies(25)):
        signed = codec.sign({**body, "_id": f"doc-{n}", "type": "thing_v1.0"})
        read = await put_and_get(db, signed)
        assert codec.verify(read)["_id"] == f"doc-{n}"


async def test_jcs_vectors_survive_the_server(db: tac.Database) -> None:
    codec = protection().signature
    body = {
        "one": 1.0,
        "big": 1e21,
        "large": 1e20,
        "minus_zero": -0.0,
        "safe": 2**53 - 1,
        "\U0001f600": "outside the BMP",
        "\uffff": "last of the BMP",
        "nfc": "caf\u00e9",
        "nfd": unicodedata.normalize("NFD", "caf\u00e9"),
    }
    read = await put_and_get(db, codec.sign({**body, "_id": "vectors", "type": "thing_v1.0"}))
    assert read["nfd"] == "cafe\u0301"  # the server keeps strings as written
    assert codec.verify(read)["safe"] == 2**53 - 1


async def stored_customer(db: tac.Database, doc_id: str = "c1", **values: Any) -> Doc:
    customer = Customer(id=doc_id, name="n", email="a@b.c", phone="555", **values)
    await db.put_doc(await encode(protection(), customer))
    return await db.get_doc(doc_id)


def read_customer(doc: Doc) -> Customer:
    return decode(protection(), Customer, doc)


async def test_a_protected_model_round_trips(db: tac.Database) -> None:
    doc = await stored_customer(db, password=HashedSecret.new("hunter2"))
    customer = read_customer(doc)
    assert (customer.email, customer.phone) == ("a@b.c", "555")
    assert customer.password is not None
    assert await customer.password.verify("hunter2")
    assert "a@b.c" not in str(doc)
    assert "hunter2" not in str(doc)


def edit(change: Callable[[Doc], None]) -> Callable[[tac.Database, Doc], Awaitable[Doc]]:
    async def apply(db: tac.Database, doc: Doc) -> Doc:
        change(doc)
        await db.put_doc(doc)  # as an administrator would, over HTTP, with the current _rev
        return await db.get_doc(doc["_id"])

    return apply


async def copy_to_new_id(db: tac.Database, doc: Doc) -> Doc:
    copied = {k: v for k, v in doc.items() if k != "_rev"}
    copied["_id"] = "c-copy"
    await db.put_doc(copied)
    return await db.get_doc("c-copy")


async def ciphertext_from_another_document(db: tac.Database, doc: Doc) -> Doc:
    other = await stored_customer(db, "c2")
    doc["email"] = other["email"]
    return await edit(lambda d: None)(db, doc)


def swap_fields(doc: Doc) -> None:
    doc["email"], doc["phone"] = doc["phone"], doc["email"]


def set_kid(doc: Doc, kid: str) -> None:
    doc[SIGNATURE_FIELD]["kid"] = kid


# Each case: an edit through HTTP, and what reading it through the codecs raises (the table in
# docs/protection.md).
CASES: dict[str, tuple[Callable[[tac.Database, Doc], Awaitable[Doc]], type[ProtectionError]]] = {
    "change a signed field": (edit(lambda d: d.update(name="m")), TamperedDocument),
    "add a field": (edit(lambda d: d.update(admin=True)), TamperedDocument),
    "delete a field": (edit(lambda d: d.pop("name")), TamperedDocument),
    "change type": (edit(lambda d: d.update(type="customer_v0.9")), TamperedDocument),
    "copy the body to a new _id": (copy_to_new_id, TamperedDocument),
    "strip the signature": (edit(lambda d: d.pop(SIGNATURE_FIELD)), UnsignedDocument),
    "change the key id": (edit(lambda d: set_kid(d, "k2")), TamperedDocument),
    "name an unknown key id": (edit(lambda d: set_kid(d, "k9")), UnknownKeyError),
    "plaintext in an encrypted field": (edit(lambda d: d.update(email="a@b.c")), TamperedDocument),
    "swap two encrypted fields": (edit(swap_fields), TamperedDocument),
    "ciphertext from another document": (ciphertext_from_another_document, TamperedDocument),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_direct_edits_are_detected(db: tac.Database, case: str) -> None:
    change, error = CASES[case]
    tampered = await change(db, await stored_customer(db))
    with pytest.raises(error) as caught:
        read_customer(tampered)
    assert caught.value.doc_id == tampered["_id"]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda d: d.update(email="a@b.c"), UnprotectedField),
        (swap_fields, DecryptionFailed),
    ],
    ids=["plaintext", "swapped"],
)
async def test_field_codec_catches_edits_without_the_signature(
    db: tac.Database, change: Callable[[Doc], None], error: type[ProtectionError]
) -> None:
    # Defence in depth: the encrypted field itself refuses the edit, signature or not.
    tampered = await edit(change)(db, await stored_customer(db))
    context = FieldContext(tampered["_id"], "customer", "email", Encrypted(blind_index=True))
    with pytest.raises(error):
        protection().encrypted.decode(tampered["email"], context)


async def test_blind_index_view_finds_by_equality_and_holds_no_plaintext(db: tac.Database) -> None:
    # The view the store will generate for an Encrypted(blind_index=True) Indexed() field: it
    # emits the envelope's Encrypted.view_member ("bi") instead of the stored value.
    await db.put_doc(
        {
            "_id": "_design/customer_by_email",
            "views": {
                "customer_by_email": {
                    "map": "function (doc) { if (doc.type === 'customer_v1.0' && doc.email) "
                    "{ emit(doc.email.bi, null); } }"
                }
            },
        }
    )
    for n, email in enumerate(["a@b.c", "x@y.z", "a@b.c"]):
        customer = Customer(id=f"c{n}", name="n", email=email, phone="1")
        await db.put_doc(await encode(protection(), customer))
    codec = protection().encrypted
    marker = Encrypted(blind_index=True)
    keys = codec.index_keys("a@b.c", FieldContext("", "customer", "email", marker))
    assert keys is not None

    async def found_by_equality() -> bool:  # (at once on one node; a cluster's copies may lag)
        rows = [r async for r in db.view("customer_by_email", "customer_by_email", keys=keys)]
        return sorted(r["id"] for r in rows) == ["c0", "c2"]

    await eventually(found_by_equality)
    everything = [r async for r in db.view("customer_by_email", "customer_by_email")]
    assert len(everything) == 3
    assert "a@b.c" not in str(everything)


async def test_an_unsigned_deletion_is_detected_and_a_signed_one_verifies(db: tac.Database) -> None:
    codec = protection().signature
    doc = await stored_customer(db)
    deleted = await db.delete_doc("c1", doc["_rev"])  # an administrator's DELETE
    with pytest.raises(UnsignedDocument):
        codec.decode(await db.get_doc("c1", rev=deleted["rev"]), DocumentContext("c1", "customer"))
    signed = codec.sign(
        {"_id": "c2", "_deleted": True, "_rev": (await stored_customer(db, "c2"))["_rev"]}
    )
    saved = await db.put_doc(signed)
    assert codec.verify(await db.get_doc("c2", rev=saved["rev"]))["_deleted"] is True


async def test_replay_of_an_older_signed_revision_is_not_detected(db: tac.Database) -> None:
    # The documented limitation, pinned: _rev is not signed.
    first = await stored_customer(db)
    newer = await encode(protection(), read_customer(first).model_copy(update={"name": "m"}))
    current = await db.put_doc(newer)
    replayed = {**first, "_rev": current["rev"]}
    await db.put_doc(replayed)
    assert read_customer(await db.get_doc("c1")).name == "n"


async def test_attachments_are_checked_as_stubs_and_by_content(db: tac.Database) -> None:
    codec = protection().signature
    content = b"a signed attachment"
    inline = {"content_type": "text/plain", "data": base64.b64encode(content).decode()}
    signed = codec.sign({"_id": "a1", "type": "thing_v1.0", "_attachments": {"a.txt": inline}})
    read = await put_and_get(db, signed)
    assert read["_attachments"]["a.txt"]["stub"] is True
    assert codec.verify(read)["_id"] == "a1"  # the stub's type and length are the signed ones
    data, _ = await db.get_attachment("a1", "a.txt")
    codec.verify_attachment(read, "a.txt", data)
    await db.put_attachment(
        "a1", "a.txt", b"swapped content", content_type="text/plain", rev=read["_rev"]
    )
    with pytest.raises(TamperedDocument):
        codec.verify(await db.get_doc("a1"))


@pytest.fixture
async def app_user(couch: tac.CouchDB) -> AsyncIterator[tuple[str, str]]:
    """A non-admin user with the role ``app`` (the application tier), removed afterwards."""
    users = couch.database("_users")
    await users.create(exists_ok=True)
    name, password = f"app{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    doc = {"_id": f"org.couchdb.user:{name}", "name": name, "password": password}
    saved = await users.put_doc({**doc, "roles": ["app"], "type": "user"})
    try:
        yield name, password
    finally:
        await users.delete_doc(doc["_id"], saved["rev"])


async def test_the_server_refuses_unsigned_writes_by_the_application(
    couch: tac.CouchDB, db: tac.Database, couch_server: CouchServer, app_user: tuple[str, str]
) -> None:
    security = security_object(member_roles=["app"])
    await db.set_security(admins=security["admins"], members=security["members"])
    await db.put_doc(validate_doc_update_design())
    codec = protection().signature
    async with tac.CouchDB(couch_server.url, auth=app_user) as app:
        as_app = app.database(db.name)
        with pytest.raises(tac.Forbidden, match="unsigned write refused"):
            await as_app.put_doc({"_id": "x", "type": "thing_v1.0"})
        saved = await as_app.put_doc(codec.sign({"_id": "y", "type": "thing_v1.0"}))
        with pytest.raises(tac.Forbidden):  # a DELETE is an unsigned deletion
            await as_app.delete_doc("y", saved["rev"])
    await db.put_doc({"_id": "z", "type": "thing_v1.0"})  # admins pass (installer, replication)
