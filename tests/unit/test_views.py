"""Design documents from models; their map functions run in node against sample documents."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from typing import Annotated, Any

import pytest

from tor_async_couchdb._exceptions import ModelDefinitionError, UnknownIndexError
from tor_async_couchdb._models._model import Index, Indexed, Model, ModelSet
from tor_async_couchdb._models._views import design_doc, design_docs, map_function, view_location

T1 = datetime(2026, 11, 27, 11, 0, tzinfo=UTC)
T2 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class Fruit(
    Model,
    type_name="fruit",
    version="2.0",
    indexes={"fruit_id_updated_on": ("fruit_id", "updated_on")},
):
    fruit_id: Annotated[str, Indexed()]
    color: Annotated[str | None, Indexed()] = None
    updated_on: datetime


class Vegetable(Model, type_name="vegetable", version="1.0"):
    fruit_id: Annotated[str, Indexed()]


# --- design documents ------------------------------------------------------------------------


def test_one_design_doc_per_view_sorted_by_id() -> None:
    docs = design_docs([Fruit, Vegetable])
    assert [doc["_id"] for doc in docs] == [
        "_design/fruit_all",
        "_design/fruit_by_color",
        "_design/fruit_by_fruit_id",
        "_design/fruit_by_fruit_id_updated_on",
        "_design/vegetable_all",
        "_design/vegetable_by_fruit_id",
    ]
    for doc in docs:
        view = doc["_id"].removeprefix("_design/")
        assert doc == {
            "_id": doc["_id"],
            "language": "javascript",
            "views": {view: {"map": doc["views"][view]["map"]}},
        }


def test_design_docs_take_a_model_set() -> None:
    assert design_docs(ModelSet(Vegetable)) == design_docs([Vegetable])


def test_design_docs_refuse_clashing_models() -> None:
    class Other(Model, type_name="fruit", version="1.0"):
        pass

    with pytest.raises(ModelDefinitionError, match="type_name 'fruit'"):
        design_docs([Fruit, Other])


def test_view_location() -> None:
    assert view_location(Fruit) == ("_design/fruit_all", "fruit_all")
    assert view_location(Fruit, "color") == ("_design/fruit_by_color", "fruit_by_color")
    index = Fruit.couch_info().index("fruit_id_updated_on")
    assert view_location(Fruit, index) == (
        "_design/fruit_by_fruit_id_updated_on",
        "fruit_by_fruit_id_updated_on",
    )


def test_view_location_of_an_unknown_index() -> None:
    with pytest.raises(UnknownIndexError):
        view_location(Fruit, "size")
    with pytest.raises(UnknownIndexError):
        view_location(Fruit, Index("size", ("size",), "fruit_by_size"))


def test_design_doc_of_one_index() -> None:
    doc = design_doc(Fruit, "color")
    assert doc["_id"] == "_design/fruit_by_color"
    assert doc["views"]["fruit_by_color"]["map"] == map_function(
        Fruit.couch_info(), Fruit.couch_info().index("color")
    )


# --- the map functions, run by node ----------------------------------------------------------

HARNESS = r"""
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const rows = [];
let current = null;
function emit(key, value) { rows.push([current._id, key, value]); }
const map = eval("(" + input.map + ")");
for (const doc of input.docs) { current = doc; map(doc); }
process.stdout.write(JSON.stringify(rows));
"""


def run_map(model: type[Model], index: str | None, docs: list[dict[str, Any]]) -> list[Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    view = view_location(model, index)[1]
    source = design_doc(model, index)["views"][view]["map"]
    answer = subprocess.run(
        [node, "-e", HARNESS],
        input=json.dumps({"map": source, "docs": docs}),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    rows: list[Any] = json.loads(answer.stdout)
    return rows


def fruit_docs() -> list[dict[str, Any]]:
    return [
        Fruit(id="current", fruit_id="f1", color="red", updated_on=T1).to_doc(),
        Fruit(id="no_color", fruit_id="f1", updated_on=T2).to_doc(),
        Fruit(id="gone", fruit_id="f2", color="red", updated_on=T2, tombstone=True).to_doc(),
        {"_id": "old", "type": "fruit_v1.0", "fruit_id": "f3", "colour": "green"},
        Vegetable(id="veg", fruit_id="f1").to_doc(),
        {"_id": "untyped", "fruit_id": "f1", "color": "red"},
        {"_id": "numeric_type", "type": 7, "fruit_id": "f1"},
        {"_id": "lookalike", "type": "fruity_v1.0", "fruit_id": "f1"},
        {"_id": "suffixed", "type": "fruit_v1.0x", "fruit_id": "f1"},
        {"_id": "prefixed", "type": "my_fruit_v1.0", "fruit_id": "f1"},
    ]


def test_the_all_view_emits_every_version_of_the_type_by_id() -> None:
    assert run_map(Fruit, None, fruit_docs()) == [
        ["current", "current", None],
        ["no_color", "no_color", None],
        ["gone", "gone", True],
        ["old", "old", None],
    ]


def test_a_field_view_skips_documents_without_the_field() -> None:
    assert run_map(Fruit, "fruit_id", fruit_docs()) == [
        ["current", "f1", None],
        ["no_color", "f1", None],
        ["gone", "f2", True],
        ["old", "f3", None],
    ]


def test_a_null_value_is_indexed_but_a_missing_one_is_not() -> None:
    assert run_map(Fruit, "color", fruit_docs()) == [
        ["current", "red", None],
        ["no_color", None, None],
        ["gone", "red", True],
    ]


def test_a_compound_view_emits_the_key_list() -> None:
    assert run_map(Fruit, "fruit_id_updated_on", fruit_docs()) == [
        ["current", ["f1", "2026-11-27T11:00:00.000000Z"], None],
        ["no_color", ["f1", "2026-11-27T12:00:00.000000Z"], None],
        ["gone", ["f2", "2026-11-27T12:00:00.000000Z"], True],
    ]


def test_a_missing_field_is_not_found_on_the_object_prototype() -> None:
    class Odd(Model, type_name="odd", version="2.0", indexes={"both": ("constructor", "valueOf")}):
        constructor: Annotated[int, Indexed()]
        valueOf: int  # noqa: N815 - the point is a name JavaScript objects inherit

    docs = [
        Odd(id="new", constructor=3, valueOf=4).to_doc(),
        {"_id": "old", "type": "odd_v1.0"},
        {"_id": "half", "type": "odd_v1.0", "constructor": 1},
    ]
    assert run_map(Odd, "constructor", docs) == [["new", 3, None], ["half", 1, None]]
    assert run_map(Odd, "both", docs) == [["new", [3, 4], None]]
