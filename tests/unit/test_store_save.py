"""What db.save does before and after its request: validate again, build the doc, set the rev."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cached_property

import pytest
from pydantic import BaseModel, Field, computed_field

import tor_async_couchdb as tac
from tor_async_couchdb._store._mapper import checked_doc as _checked_doc
from tor_async_couchdb._store._mapper import with_rev as _with_rev
from tor_async_couchdb._transport import MockRequest, MockTransport, Response


class Note(tac.Model, type_name="note", version="1.0"):
    text: str
    tags: list[str] = Field(default_factory=list)
    on: datetime = datetime(2026, 1, 1, tzinfo=UTC)


class Cached(tac.Model, type_name="cached", version="1.0"):
    text: str = ""

    @computed_field  # type: ignore[prop-decorator]
    @cached_property
    def length(self) -> int:
        return len(self.text)


def test_checked_doc_validates_a_copy_and_gives_it_an_id() -> None:
    note = Note(text="a")
    doc, checked = _checked_doc(note)
    assert checked is not note
    assert note.id is None
    assert checked.id is not None
    assert doc == {"_id": checked.id, **Note(text="a").to_doc()}


def test_checked_doc_refuses_what_validation_would() -> None:
    constructed = Note.model_construct(text=7)
    with pytest.raises(tac.ModelValidationError, match="text"):
        _checked_doc(constructed)
    mutated = Note(id="n", text="a")
    mutated.tags.append(3)  # type: ignore[arg-type]
    with pytest.raises(tac.ModelValidationError, match=r"tags\.0"):
        _checked_doc(mutated)


def test_checked_doc_ignores_cached_computed_fields() -> None:
    model = Cached(id="c", text="abc")
    assert model.length == 3  # now cached in the instance's __dict__
    doc, checked = _checked_doc(model)
    assert doc["length"] == 3
    assert checked == Cached(id="c", text="abc")


def test_with_rev_sets_the_rev_of_the_checked_model() -> None:
    _, checked = _checked_doc(Note(id="n", text="a"))
    saved = _with_rev(checked, "1-abc")
    assert saved.rev == "1-abc"
    assert "rev" in saved.model_fields_set
    assert saved.to_doc()["_rev"] == "1-abc"
    assert saved == Note(id="n", rev="1-abc", text="a")


class Inner(BaseModel):
    n: int


class Holder(tac.Model, type_name="holder", version="1.0"):
    inner: Inner


async def test_a_nested_model_changed_in_place_is_refused_before_any_request() -> None:
    sent: list[MockRequest] = []

    def server(request: MockRequest) -> Response:
        sent.append(request)
        return Response(201, {}, b'{"ok":true,"id":"h","rev":"1-a"}')

    holder = Holder(id="h", inner=Inner(n=1))
    holder.inner.n = "not a number"  # type: ignore[assignment]
    async with tac.CouchDB("http://h:1", transport=MockTransport(server)) as couch:
        with pytest.raises(tac.ModelValidationError, match="expected int") as caught:
            await couch.database("d").save(holder)
    assert caught.value.fields == ("n",)
    assert sent == []
    holder.inner = Inner.model_construct(n="also not")
    with pytest.raises(tac.ModelValidationError):
        holder.to_doc()


def test_model_copy_after_a_cached_computed_field_was_read() -> None:
    cached = Cached(text="abc")
    assert cached.length == 3
    assert cached.model_copy(update={"text": "abcd"}).length == 4


def test_a_constructed_model_missing_a_required_field_is_a_validation_error() -> None:
    with pytest.raises(tac.ModelValidationError, match="text"):
        _checked_doc(Note.model_construct(tags=["a"]))
