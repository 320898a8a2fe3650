"""ModelSet: the models a database handle reads and writes, free of name clashes."""

from __future__ import annotations

from typing import Annotated

import pytest

from tor_async_couchdb._exceptions import ModelDefinitionError, WrongTypeError
from tor_async_couchdb._models._model import Indexed, Model, ModelSet


class Fruit(Model, type_name="fruit", version="1.1"):
    name: Annotated[str, Indexed()]


class Vegetable(Model, type_name="vegetable", version="1.0"):
    name: str


class Base(Model, abstract=True):
    name: str


def test_it_maps_any_version_of_a_type_to_its_model() -> None:
    models = ModelSet(Fruit, Vegetable)
    assert models.model_for_type("fruit_v1.1") is Fruit
    assert models.model_for_type("fruit_v0.3") is Fruit
    assert models.model_for_type("fruit_v9.0") is Fruit  # Fruit.from_doc refuses to downgrade
    assert models.model_for_type("vegetable_v1.0") is Vegetable


@pytest.mark.parametrize("type_string", ["mineral_v1.0", "fruit", "fruit_v1", None, 3])
def test_an_unknown_or_malformed_type_is_a_wrong_type(type_string: object) -> None:
    with pytest.raises(WrongTypeError, match="no model reads") as caught:
        ModelSet(Fruit).model_for_type(type_string, doc_id="abc")
    assert (caught.value.doc_id, caught.value.found) == ("abc", type_string)


def test_from_doc_reads_a_mixed_collection() -> None:
    models = ModelSet(Fruit, Vegetable)
    docs = [Fruit(id="a", name="apple").to_doc(), Vegetable(id="b", name="leek").to_doc()]
    assert [models.from_doc(doc) for doc in docs] == [
        Fruit(id="a", name="apple"),
        Vegetable(id="b", name="leek"),
    ]
    with pytest.raises(WrongTypeError, match="'c'"):
        models.from_doc({"_id": "c", "type": "mineral_v1.0"})


def test_two_models_cannot_share_a_type_name() -> None:
    class Other(Model, type_name="fruit", version="2.0"):
        pass

    with pytest.raises(ModelDefinitionError, match=r"Fruit and .*Other both claim the type_name"):
        ModelSet(Fruit, Other)


def test_two_models_cannot_share_a_view_name() -> None:
    class Odd(Model, type_name="fruit_by_name", version="1.0"):  # its _all view...
        pass

    class Clash(Model, type_name="fruit_by_name_all", version="1.0"):
        pass

    class Indexer(Model, type_name="fruit", version="1.0", indexes={"name_all": ("name",)}):
        name: str

    with pytest.raises(ModelDefinitionError, match="view 'fruit_by_name_all'"):
        ModelSet(Odd, Indexer)  # fruit_by_name_all: Odd's _all view and Indexer's index
    ModelSet(Odd, Clash)  # fruit_by_name_all and fruit_by_name_all_all


@pytest.mark.parametrize("bad", [Base, Model, int, "fruit"])
def test_only_concrete_models_belong(bad: object) -> None:
    with pytest.raises(ModelDefinitionError):
        ModelSet(Fruit, bad)  # type: ignore[arg-type]


def test_it_behaves_as_a_frozen_collection() -> None:
    models = ModelSet(Fruit, Vegetable, Fruit)
    assert list(models) == [Fruit, Vegetable]
    assert len(models) == 2
    assert Fruit in models
    assert Base not in models
    assert models == ModelSet(Vegetable, Fruit)
    assert hash(models) == hash(ModelSet(Vegetable, Fruit))
    assert models != ModelSet(Fruit)
    assert repr(models) == "ModelSet(Fruit, Vegetable)"
    with pytest.raises(AttributeError):
        models.extra = 1  # type: ignore[attr-defined]
