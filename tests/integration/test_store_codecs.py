"""Every model read and write of the store goes through the mapper and its codecs.

Two toy codecs stand in for the real ones: a field codec that stores a marked field upper-cased
(and reads it back lower-cased) and a document codec that adds a checksum on write and checks
and removes it on read. The store's public methods are found by introspection, so a method
added later fails :func:`test_every_public_store_method_is_classified` until it is covered here.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
import pytest

import tor_async_couchdb as tac
from conftest import unique_db_name
from support.eventually import eventually, views_caught_up
from tor_async_couchdb._couch import Database as RawDatabase


@dataclass(frozen=True, slots=True)
class Shout(tac.FieldMarker):
    """Marks a field the toy field codec stores upper-cased."""


class UpperCodec:
    """A field codec: upper-case on write, lower-case on read; counts its calls."""

    marker_type = Shout

    def __init__(self) -> None:
        self.encoded = 0
        self.decoded = 0

    async def encode(self, value: Any, context: tac.FieldContext) -> Any:
        assert context.doc_id
        assert (context.type_name, context.path) == ("note", "text")
        self.encoded += 1
        return str(value).upper()

    def decode(self, stored: Any, context: tac.FieldContext) -> Any:
        self.decoded += 1
        return str(stored).lower()

    def index_keys(self, value: Any, context: tac.FieldContext) -> list[Any] | None:
        return [str(value).upper()]


def _checksum(doc: dict[str, Any]) -> str:
    body = {k: v for k, v in doc.items() if k not in ("_rev", "_revisions", "sum")}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


class ChecksumCodec:
    """A document codec: adds ``sum`` on write, checks and drops it on read."""

    def __init__(self) -> None:
        self.encoded = 0
        self.decoded = 0

    def encode(self, doc: dict[str, Any], context: tac.DocumentContext) -> dict[str, Any]:
        assert context.doc_id == doc["_id"]
        assert context.type_name in ("note", "tac_checkpoint")  # (migrate's checkpoint too)
        self.encoded += 1
        return {**doc, "sum": _checksum(doc)}

    def decode(self, doc: dict[str, Any], context: tac.DocumentContext) -> dict[str, Any]:
        self.decoded += 1
        if doc.get("sum") != _checksum(doc):
            raise tac.InvalidInputError(f"document {context.doc_id!r} fails its checksum")
        return {k: v for k, v in doc.items() if k != "sum"}


class Note(tac.Model, type_name="note", version="1.1"):
    text: Annotated[str, Shout(), tac.Indexed()]
    n: Annotated[int, tac.Indexed()] = 0

    @tac.upgrade("1.0", to="1.1")
    @staticmethod
    def _numbered(doc: dict[str, Any]) -> dict[str, Any]:
        doc.setdefault("n", 0)
        return doc


@dataclass
class Codecs:
    field: UpperCodec
    document: ChecksumCodec
    db: tac.Database

    def calls(self) -> tuple[int, int, int, int]:
        f, d = self.field, self.document
        return (f.encoded, f.decoded, d.encoded, d.decoded)


@pytest.fixture
async def coded(couch: tac.CouchDB) -> AsyncIterator[Codecs]:
    field, document = UpperCodec(), ChecksumCodec()
    db = couch.database(unique_db_name("codecs"), codecs=[field, document])
    await db.create()
    await db.install_views(Note)
    try:
        yield Codecs(field, document, db)
    finally:
        await db.delete_database(missing_ok=True)


async def _stored(coded: Codecs, doc_id: str) -> dict[str, Any]:
    return await coded.db.get_doc(doc_id)


async def _raw_note(coded: Codecs, text: str, *, version: str = "1.1") -> str:
    """A note written as another application tier would: encoded by hand, put raw."""
    doc: dict[str, Any] = {"_id": tac.new_id(), "type": f"note_v{version}", "text": text.upper()}
    if version == "1.1":
        doc["n"] = 1
    doc["sum"] = _checksum(doc)
    await coded.db.put_doc(doc)
    return str(doc["_id"])


def _assert_written(doc: dict[str, Any], text: str) -> None:
    assert doc["text"] == text.upper()
    assert doc["sum"] == _checksum(doc)


# --- how each public method is exercised -----------------------------------------------------
# Each returns the ids of the documents it wrote (checked raw) and the models it read.

Exercise = Callable[[Codecs], Awaitable[tuple[list[str], list[tac.Model]]]]


async def _save(c: Codecs) -> tuple[list[str], list[tac.Model]]:
    saved = await c.db.save(Note(text="saved"))
    assert saved.text == "saved"
    return [saved.id or ""], []


async def _save_many(c: Codecs) -> tuple[list[str], list[tac.Model]]:
    results = await c.db.save_many([Note(text="many a"), Note(text="many b")])
    return [r.unwrap().id or "" for r in results], []


async def _update(c: Codecs) -> tuple[list[str], list[tac.Model]]:
    doc_id = await _raw_note(c, "before")
    updated = await c.db.update(Note, doc_id, lambda n: n.model_copy(update={"n": 7}))
    assert updated.text == "before"
    return [doc_id], [updated]


async def _tombstone(c: Codecs) -> tuple[list[str], list[tac.Model]]:
    doc_id = await _raw_note(c, "kept")
    gone = await c.db.tombstone(await c.db.get(Note, doc_id), retry=tac.ConflictRetry())
    return [doc_id], [gone]


async def _delete(c: Codecs) -> tuple[list[str], list[tac.Model]]:
    note = await c.db.save(Note(text="to delete"))
    before = c.document.encoded
    await c.db.delete(note)
    assert c.document.encoded == before + 1  # the deletion stub went through the codec
    leaves = await c.db.get_open_revs(note.id or "")
    stub = leaves[0]["ok"]
    assert stub["_deleted"] is True
    assert stub["sum"] == _checksum(stub)
    return [], []


async def _migrate(c: Codecs) -> tuple[list[str], list[tac.Model]]:
    doc_id = await _raw_note(c, "old", version="1.0")
    design, view = tac.view_location(Note)

    async def in_the_all_view() -> bool:  # (at once on one node; a cluster's copies may lag)
        return doc_id in [row["id"] async for row in c.db.view(design, view)]

    await eventually(in_the_all_view)
    progress = await c.db.migrate(Note)
    assert progress.upgraded == 1
    assert (await _stored(c, doc_id))["type"] == "note_v1.1"
    return [doc_id], []


async def _get(c: Codecs) -> tuple[list[str], list[tac.Model]]:
    return [], [await c.db.get(Note, await _raw_note(c, "got"))]


async def _conflicts(c: Codecs) -> tuple[list[str], list[tac.Model]]:
    report = await c.db.conflicts(Note, await _raw_note(c, "leaves"))
    return [], [*report.leaves]


async def _get_many(c: Codecs) -> tuple[list[str], list[tac.Model]]:
    ids = [await _raw_note(c, "one"), await _raw_note(c, "two")]
    return [], [n async for n in c.db.get_many(Note, ids)]


async def _visible(c: Codecs, doc_id: str) -> None:
    """Wait until every view of Note shows ``doc_id`` (a cluster's copies may lag a write)."""
    await views_caught_up(c.db, Note, [await c.db.get(Note, doc_id)])


async def _query(c: Codecs) -> tuple[list[str], list[tac.Model]]:
    await _visible(c, await _raw_note(c, "findme"))
    found: list[tac.Model] = [n async for n in c.db.query(Note, text="findme")]
    assert [n.text for n in found if isinstance(n, Note)] == ["findme"]
    return [], found


async def _query_range(c: Codecs) -> tuple[list[str], list[tac.Model]]:
    await _visible(c, await _raw_note(c, "ranged"))
    return [], [n async for n in c.db.query_range(Note, "n", start=1, end=1)]


async def _most_recent(c: Codecs) -> tuple[list[str], list[tac.Model]]:
    await _visible(c, await _raw_note(c, "recent"))
    return [], await c.db.most_recent(Note, "n")


async def _all(c: Codecs) -> tuple[list[str], list[tac.Model]]:
    await _visible(c, await _raw_note(c, "every"))
    return [], [n async for n in c.db.all(Note)]


async def _find_models(c: Codecs) -> tuple[list[str], list[tac.Model]]:
    await _raw_note(c, "mango")
    return [], [n async for n in c.db.find_models(Note, {"n": 1})]


WRITES: dict[str, Exercise] = {
    "save": _save,
    "save_many": _save_many,
    "update": _update,
    "tombstone": _tombstone,
    "delete": _delete,
    "migrate": _migrate,
}
READS: dict[str, Exercise] = {
    "get": _get,
    "get_many": _get_many,
    "conflicts": _conflicts,
    "query": _query,
    "query_range": _query_range,
    "most_recent": _most_recent,
    "all": _all,
    "find_models": _find_models,
}
# Public store methods that read or write no model: design documents, the mapper itself, the
# number of copies a cluster keeps, the quarantine setting. (``rotate`` rewrites raw documents
# with the protection codecs' Rotator, not these toy codecs: tests/integration/
# test_protect_store.py covers it.)
NOT_MODELS = {"copies", "install_views", "mapper", "quarantine", "rotate"}


def _store_methods() -> set[str]:
    """The public names the store's Database adds to the raw one."""
    return {
        name
        for name, _ in inspect.getmembers(tac.Database)
        if not name.startswith("_") and not hasattr(RawDatabase, name)
    }


def test_every_public_store_method_is_classified() -> None:
    assert _store_methods() == set(WRITES) | set(READS) | NOT_MODELS


@pytest.mark.parametrize("name", sorted(WRITES))
async def test_writes_go_through_the_codecs(coded: Codecs, name: str) -> None:
    written, _ = await WRITES[name](coded)
    for doc_id in written:
        stored = await _stored(coded, doc_id)
        assert stored["text"] == stored["text"].upper()
        assert stored["sum"] == _checksum(stored)
    assert coded.field.encoded >= len(written)
    assert coded.document.encoded >= len(written)


@pytest.mark.parametrize("name", sorted(READS))
async def test_reads_go_through_the_codecs(coded: Codecs, name: str) -> None:
    _, models = await READS[name](coded)
    assert models
    for model in models:
        assert isinstance(model, Note)
        assert model.text == model.text.lower()  # decoded: stored upper-cased
    assert coded.document.decoded >= len(models)
    assert coded.field.decoded >= len(models)


async def test_a_document_failing_its_codec_is_never_returned(coded: Codecs) -> None:
    doc_id = tac.new_id()
    doc = {"_id": doc_id, "type": "note_v1.1", "text": "EDITED", "n": 1, "sum": "0" * 64}
    await coded.db.put_doc(doc)
    with pytest.raises(tac.InvalidInputError, match="checksum"):
        await coded.db.get(Note, doc_id)
    with pytest.raises(tac.InvalidInputError, match="checksum"):
        [n async for n in coded.db.query(Note, text="edited")]


def test_a_codec_that_is_neither_kind_is_refused() -> None:
    with pytest.raises(tac.InvalidInputError, match="neither a FieldCodec"):
        tac.Mapper([object()])  # type: ignore[list-item]
