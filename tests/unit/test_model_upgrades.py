"""Reading older documents: upgrade steps declared with @upgrade, run in order, checked early."""

from __future__ import annotations

import types
from typing import Any, cast

import pytest

from tor_async_couchdb._exceptions import ModelDefinitionError, ModelValidationError, WrongTypeError
from tor_async_couchdb._models._model import Model, UpgradeStep, upgrade

Doc = dict[str, Any]
calls: list[str] = []


class Fruit(Model, type_name="fruit", version="2.0"):
    """1.0 had "colour"; 1.1 renamed it "color"; 2.0 added "size"."""

    color: str
    size: str

    @upgrade("1.1", to="2.0")
    @staticmethod
    def _add_size(doc: Doc) -> Doc:
        calls.append(f"1.1->2.0 {doc['type']}")
        doc["size"] = "medium"
        return doc

    @upgrade("1.0", to="1.1")
    @staticmethod
    def _rename_colour(doc: Doc) -> Doc:
        calls.append(f"1.0->1.1 {doc['type']}")
        doc["color"] = doc.pop("colour")
        return doc


@pytest.fixture(autouse=True)
def _no_calls() -> None:
    calls.clear()


def test_the_chain_is_metadata_in_order() -> None:
    steps = Fruit.couch_info().upgrades
    assert [(s.from_version, s.to_version) for s in steps] == [((1, 0), (1, 1)), ((1, 1), (2, 0))]
    assert all(isinstance(step, UpgradeStep) for step in steps)


def test_an_old_document_is_upgraded_step_by_step() -> None:
    doc = {"_id": "abc", "_rev": "3-x", "type": "fruit_v1.0", "colour": "red"}
    fruit = Fruit.from_doc(doc)
    assert calls == ["1.0->1.1 fruit_v1.0", "1.1->2.0 fruit_v1.1"]
    assert fruit == Fruit(id="abc", rev="3-x", color="red", size="medium")
    assert fruit.to_doc()["type"] == "fruit_v2.0"


def test_the_stored_document_is_left_alone() -> None:
    doc = {"_id": "abc", "type": "fruit_v1.0", "colour": "red", "nested": {"a": [1]}}
    before = repr(doc)
    with pytest.raises(ModelValidationError):
        Fruit.from_doc(doc)  # "nested" is no field: the upgraded copy fails, not the input
    assert repr(doc) == before


def test_a_document_in_between_starts_midway() -> None:
    Fruit.from_doc({"type": "fruit_v1.1", "color": "red"})
    assert calls == ["1.1->2.0 fruit_v1.1"]


def test_a_current_document_runs_no_step() -> None:
    Fruit.from_doc({"type": "fruit_v2.0", "color": "red", "size": "big"})
    assert calls == []


def test_a_version_the_chain_does_not_know_is_a_wrong_type() -> None:
    with pytest.raises(WrongTypeError, match=r"no upgrade from 1\.5") as caught:
        Fruit.from_doc({"_id": "abc", "type": "fruit_v1.5", "color": "red"})
    assert caught.value.doc_id == "abc"
    assert caught.value.found == "fruit_v1.5"


def test_an_upgraded_document_is_still_validated() -> None:
    with pytest.raises(ModelValidationError, match="color") as caught:
        Fruit.from_doc({"_id": "abc", "type": "fruit_v1.1", "colour": "red"})
    assert caught.value.doc_id == "abc"


def test_an_error_names_the_document_even_if_a_step_dropped_its_id() -> None:
    class Fresh(Model, type_name="fresh", version="1.1"):
        color: str

        @upgrade("1.0", to="1.1")
        @staticmethod
        def _rebuild(doc: Doc) -> Doc:
            return {"type": doc["type"], "colour": doc["colour"]}  # a new dict, without _id

    with pytest.raises(ModelValidationError, match="document 'abc'") as caught:
        Fresh.from_doc({"_id": "abc", "type": "fresh_v1.0", "colour": "red"})
    assert caught.value.doc_id == "abc"


def test_a_failing_step_names_the_document_and_the_step() -> None:
    with pytest.raises(ModelValidationError, match=r"'abc'.*upgrade from 1\.0 to 1\.1") as caught:
        Fruit.from_doc({"_id": "abc", "type": "fruit_v1.0"})  # no "colour": KeyError
    assert isinstance(caught.value.__cause__, KeyError)


def test_a_step_must_return_the_document() -> None:
    class Broken(Model, type_name="broken", version="1.1"):
        @upgrade("1.0", to="1.1")
        @staticmethod
        def _forgot_return(doc: Doc) -> Doc:
            doc["x"] = 1
            return None  # type: ignore[return-value]

    with pytest.raises(ModelDefinitionError, match="returned NoneType"):
        Broken.from_doc({"type": "broken_v1.0"})


def declare(version: str, *spans: tuple[str, str]) -> type[Model]:
    namespace: dict[str, Any] = {
        f"step_{n}": upgrade(start, to=end)(staticmethod(lambda doc: doc))
        for n, (start, end) in enumerate(spans)
    }
    keywords = {"type_name": "declared", "version": version}
    declared = types.new_class("Declared", (Model,), keywords, lambda ns: ns.update(namespace))
    return cast(type[Model], declared)


def test_declare_helper_makes_a_working_model() -> None:
    model = declare("2.0", ("1.0", "1.5"), ("1.5", "2.0"))
    assert len(model.couch_info().upgrades) == 2


@pytest.mark.parametrize(
    ("version", "spans", "match"),
    [
        ("2.0", [("1.0", "1.1")], "no upgrade from 1.1"),
        ("3.0", [("1.0", "2.0"), ("2.1", "3.0")], "no upgrade from 2.0"),
        ("2.0", [("1.0", "3.0")], "versions must rise, up to 2.0"),
        ("2.0", [("1.1", "1.0")], "versions must rise"),
        ("2.0", [("2.0", "2.0")], "versions must rise"),
        ("2.0", [("1.0", "2.0"), ("1.0", "1.5")], "two upgrades start from 1.0"),
        ("2.0", [("1", "2.0")], "version must be"),
    ],
)
def test_a_broken_chain_fails_at_class_creation(
    version: str, spans: list[tuple[str, str]], match: str
) -> None:
    with pytest.raises(ModelDefinitionError, match=match):
        declare(version, *spans)


def test_upgrade_must_decorate_a_staticmethod() -> None:
    def plain(doc: Doc) -> Doc:
        return doc

    with pytest.raises(ModelDefinitionError, match="@staticmethod"):
        upgrade("1.0", to="1.1")(plain)


def test_an_abstract_model_takes_no_upgrades() -> None:
    with pytest.raises(ModelDefinitionError, match="abstract"):

        class Base(Model, abstract=True):
            @upgrade("1.0", to="1.1")
            @staticmethod
            def _step(doc: Doc) -> Doc:
                return doc
