"""Pure parts of the operations API: reading and checking sources, plans, sizes, endpoints."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

import tor_async_couchdb as tac
from tor_async_couchdb import ops
from tor_async_couchdb._ops._replication import _bare

MAP = "function (doc) { emit(doc._id, null); }"


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


class TestDesignFolders:
    def test_id_from_the_file_name_and_an_exported_rev_dropped(self, tmp_path: Path) -> None:
        write(tmp_path, "b_view.json", json.dumps({"_rev": "3-x", "views": {"v": {"map": MAP}}}))
        write(tmp_path, "a.json", json.dumps({"_id": "_design/own", "views": {}}))
        write(tmp_path, "notes.txt", "not a design document")
        docs = ops.design_docs_from_folder(tmp_path)
        assert [doc["_id"] for doc in docs] == ["_design/own", "_design/b_view"]
        assert "_rev" not in docs[1]

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            (
                '{"views": {\n  "v": {"map": "x",}\n}}',
                r"bad\.json: line 2, column 20: invalid JSON",
            ),
            ("[1, 2]", r"bad\.json: a document must be a JSON object"),
            ('{"_id": "plain", "views": {}}', r"_id must start with '_design/'"),
            ('{"views": []}', r"'views' must be an object"),
            ('{"views": {"v": {"map": 3}}}', r"view 'v' needs a 'map' function"),
            ('{"views": {"v": {"map": "m", "reduce": 1}}}', r"'reduce' that is not a string"),
            ('{"views": {"v": {"map": Infinity}}}', r"Infinity is not valid JSON"),
        ],
    )
    def test_every_fault_names_the_file(self, tmp_path: Path, text: str, message: str) -> None:
        write(tmp_path, "bad.json", text)
        with pytest.raises(tac.InvalidInputError, match=message):
            ops.design_docs_from_folder(tmp_path)

    def test_a_folder_that_is_not_one(self, tmp_path: Path) -> None:
        with pytest.raises(tac.InvalidInputError, match="is not a folder"):
            ops.design_docs_from_folder(tmp_path / "missing")


class TestSeedFolders:
    def test_one_document_or_a_list_per_file(self, tmp_path: Path) -> None:
        write(tmp_path, "a.json", '{"_id": "settings", "currency": "EUR"}')
        write(tmp_path, "b.json", '[{"_id": "red"}, {"_id": "green"}]')
        assert [d["_id"] for d in ops.seed_docs_from_folder(tmp_path)] == [
            "settings",
            "red",
            "green",
        ]

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ('{"_id": "_design/x"}', "must be a plain document"),
            ('{"_id": ""}', "needs a stable '_id'"),
            ('{"_id": "a", "_rev": "1-a"}', "must not carry a '_rev'"),
            ('[{"_id": "a"}, "b"]', "every seed document must be a JSON object"),
            ('{"_id": "a"', r"line 1, column 12: invalid JSON"),
        ],
    )
    def test_faults(self, tmp_path: Path, text: str, message: str) -> None:
        write(tmp_path, "seed.json", text)
        with pytest.raises(tac.InvalidInputError, match=message):
            ops.seed_docs_from_folder(tmp_path)


MODELS = """
from typing import Annotated

import tor_async_couchdb as tac
from tor_async_couchdb import Model


class Base(tac.Model, abstract=True):
    pass


class Fruit(Base, type_name="fruit", version="1.0"):
    color: Annotated[str, tac.Indexed()]
"""


class TestModulesAndPackages:
    def test_models_defined_in_the_module_not_imported_nor_abstract(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        write(tmp_path, "ops_unit_models.py", MODELS)
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "ops_unit_models", raising=False)
        found = ops.models_from_module("ops_unit_models")
        assert [model.__name__ for model in found] == ["Fruit"]
        spec = ops.InstallSpec.build("fruit", model_modules=["ops_unit_models"])
        assert [d["_id"] for d in spec.design_docs] == [
            "_design/fruit_all",
            "_design/fruit_by_color",
        ]

    def test_a_module_without_models(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        write(tmp_path, "ops_unit_empty.py", "X = 1\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        with pytest.raises(tac.InvalidInputError, match="defines no concrete"):
            ops.models_from_module("ops_unit_empty")

    def test_package_folders(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        write(tmp_path / "ops_unit_pkg" / "couchdb" / "design", "v.json", '{"views": {}}')
        write(tmp_path / "ops_unit_pkg", "__init__.py", "")
        monkeypatch.syspath_prepend(str(tmp_path))
        folder = ops.package_folder("ops_unit_pkg:couchdb/design")
        assert [d["_id"] for d in ops.design_docs_from_folder(folder)] == ["_design/v"]
        with pytest.raises(tac.InvalidInputError, match="PACKAGE:FOLDER"):
            ops.package_folder("ops_unit_pkg")
        with pytest.raises(tac.InvalidInputError, match="has no folder 'nope'"):
            ops.package_folder("ops_unit_pkg:nope")
        with pytest.raises(tac.InvalidInputError, match="cannot import package"):
            ops.package_folder("ops_unit_no_such_pkg:couchdb")

    def test_two_sources_of_one_design_document(self, tmp_path: Path) -> None:
        write(tmp_path / "one", "v.json", '{"views": {}}')
        write(tmp_path / "two", "v.json", '{"views": {}}')
        with pytest.raises(tac.InvalidInputError, match="two sources give design document"):
            ops.InstallSpec.build("db", design_folders=[tmp_path / "one", tmp_path / "two"])


def test_security_compares_as_sets_and_reads_a_fresh_database_s_empty_object() -> None:
    given = ops.Security(member_roles=("b", "a"), admin_names=("ops",))
    stored = {"admins": {"names": ["ops"], "roles": []}, "members": {"roles": ["a", "b"]}}
    assert ops.Security.from_doc(stored).as_doc() == given.as_doc()
    assert ops.Security.from_doc({}) == ops.Security()


def test_plan_counts_and_changes() -> None:
    plan = ops.Plan(
        "db",
        (
            ops.PlanItem("database", "db", "unchanged"),
            ops.PlanItem("design", "_design/a", "updated"),
            ops.PlanItem("seed", "s", "created"),
        ),
    )
    assert plan.counts() == {"created": 1, "updated": 1, "unchanged": 1}
    assert [item.id for item in plan.changes] == ["_design/a", "s"]
    assert json.loads(json.dumps(plan.as_dict()))["items"][1]["action"] == "updated"


class TestSizes:
    def test_couchdb_3_sizes_and_fragmentation(self) -> None:
        sizes = ops.Sizes.from_info({"sizes": {"active": 250, "file": 1000, "external": 400}})
        assert sizes.fragmentation == 0.75
        assert sizes.as_dict()["fragmentation"] == 0.75

    def test_only_a_disk_size_is_no_fragmentation(self) -> None:
        sizes = ops.Sizes.from_info({"disk_size": 4096})
        assert (sizes.file, sizes.active, sizes.fragmentation) == (4096, None, None)

    def test_nothing_reported(self) -> None:
        assert ops.Sizes.from_info({"view_index": "Not implemented."}) == ops.Sizes()


class TestEndpoints:
    def test_credentials_go_into_a_header_and_never_into_a_repr(self) -> None:
        end = ops.Endpoint("http://dc2.example:5984/", "orders", "repl", "s3cret")
        assert "s3cret" not in repr(end)
        form = end.as_replication_end()
        assert form["url"] == "http://dc2.example:5984/orders"
        token = form["headers"]["Authorization"].removeprefix("Basic ")
        assert base64.b64decode(token) == b"repl:s3cret"

    def test_credentials_in_the_url_are_refused(self) -> None:
        with pytest.raises(tac.InvalidInputError, match="apart from its URL"):
            ops.Endpoint("http://u:p@dc2.example:5984", "orders")

    def test_the_name_of_a_pair_is_stable_and_a_valid_id(self) -> None:
        local = ops.Endpoint("http://127.0.0.1:5984", "orders")
        remote = ops.Endpoint("https://dc2.example:6984", "orders")
        name = ops.replication_name(local, remote)
        assert name == "tac_orders__dc2.example_6984_orders"
        assert tac.check_doc_id(name) == name

    def test_status_shows_ends_without_credentials(self) -> None:
        assert _bare("http://u:p@host:5984/db") == "http://host:5984/db"
        assert _bare({"url": "https://u:p@host/db", "headers": {}}) == "https://host/db"
        assert _bare("localdb") == "localdb"


def test_the_public_ops_namespace_is_the_whole_ops_api() -> None:
    from tor_async_couchdb import _ops

    assert ops.__all__ == _ops.__all__
    assert ops.__all__ == sorted(ops.__all__)
    for name in ops.__all__:
        assert getattr(ops, name) is getattr(_ops, name)
