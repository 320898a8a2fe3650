"""Models: declaration, metadata, documents in and out, validation errors, wrong types."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import pydantic
import pytest

from tor_async_couchdb._exceptions import (
    CouchError,
    InvalidInputError,
    ModelDefinitionError,
    ModelValidationError,
    UnknownIndexError,
    WrongTypeError,
)
from tor_async_couchdb._models._model import (
    FieldMarker,
    Index,
    Indexed,
    Model,
    format_type,
    parse_type,
)

NOW = datetime(2026, 11, 27, 11, 36, 1, 123456, tzinfo=UTC)


class Fruit(
    Model,
    type_name="fruit",
    version="1.2",
    indexes={"fruit_id_updated_on": ("fruit_id", "updated_on")},
):
    fruit_id: Annotated[str, Indexed()]
    color: Annotated[str, Indexed(name="colour")]
    updated_on: datetime
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Secret(FieldMarker):
    """A marker a later layer would act on; the model only carries it."""

    key_id: str


class Account(Model, type_name="account", version="1.0"):
    email: Annotated[str, Secret("k1"), Indexed()]
    nickname: str = ""

    @pydantic.computed_field  # type: ignore[prop-decorator]
    @property
    def domain(self) -> str:
        return self.email.rsplit("@", 1)[-1]


class Stamped(Model, abstract=True):
    created_on: Annotated[datetime, Indexed()]


class Note(Stamped, type_name="note", version="1.0"):
    text: str


def a_fruit(**changes: Any) -> Fruit:
    values: dict[str, Any] = {"fruit_id": "f1", "color": "red", "updated_on": NOW, **changes}
    return Fruit(**values)


# --- declaration and metadata ----------------------------------------------------------------


def test_the_class_keywords_become_metadata() -> None:
    info = Fruit.couch_info()
    assert info is Fruit.__couch__
    assert (info.type_name, info.version, info.type_string) == ("fruit", (1, 2), "fruit_v1.2")
    assert info.upgrades == ()


def test_indexes_come_from_markers_and_the_indexes_keyword() -> None:
    info = Fruit.couch_info()
    assert info.indexes == (
        Index("fruit_id", ("fruit_id",), "fruit_by_fruit_id"),
        Index("colour", ("color",), "fruit_by_colour"),
        Index("fruit_id_updated_on", ("fruit_id", "updated_on"), "fruit_by_fruit_id_updated_on"),
    )
    assert info.view_names == (
        "fruit_all",
        "fruit_by_fruit_id",
        "fruit_by_colour",
        "fruit_by_fruit_id_updated_on",
    )
    assert info.index("colour").fields == ("color",)
    assert info.index_for_fields("fruit_id", "updated_on") == info.indexes[2]
    assert info.index_for_fields("updated_on") is None
    with pytest.raises(UnknownIndexError):
        info.index("color")


def test_the_metadata_is_frozen() -> None:
    with pytest.raises(FrozenInstanceError):
        Fruit.couch_info().type_name = "veg"  # type: ignore[misc]


def test_field_markers_lists_every_marker_or_one_kind() -> None:
    assert Account.field_markers() == (("email", Secret("k1")), ("email", Indexed()))
    assert Account.field_markers(Secret) == (("email", Secret("k1")),)
    assert Account.couch_info().markers == Account.field_markers()
    assert [i.name for i in Account.couch_info().indexes] == ["email"]


def test_an_abstract_base_shares_fields_and_markers() -> None:
    assert Stamped.__couch__ is None
    assert Note.couch_info().indexes == (
        Index("created_on", ("created_on",), "note_by_created_on"),
    )
    note = Note(created_on=NOW, text="hi")
    assert note.to_doc() == {
        "type": "note_v1.0",
        "created_on": "2026-11-27T11:36:01.123456Z",
        "text": "hi",
    }


@pytest.mark.parametrize("model", [Model, Stamped])
def test_an_abstract_model_cannot_be_used(model: type[Model]) -> None:
    with pytest.raises(ModelDefinitionError, match="abstract"):
        model(created_on=NOW)
    with pytest.raises(ModelDefinitionError, match="abstract"):
        model.from_doc({"type": "x_v1.0"})
    with pytest.raises(ModelDefinitionError, match="abstract"):
        model.couch_info()


def test_pydantic_config_keywords_still_work() -> None:
    class Tag(Model, type_name="tag", version="1.0", str_strip_whitespace=True):
        label: str

    assert Tag(label="  x ").label == "x"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("fruit_v1.0", ("fruit", (1, 0))),
        ("fruit_v12.34", ("fruit", (12, 34))),
        ("a_v2_v1.0", ("a_v2", (1, 0))),
        ("my_fruit_2_v3.1", ("my_fruit_2", (3, 1))),
        ("fruit", None),
        ("fruit_v1", None),
        ("fruit_v1.0.1", None),
        ("Fruit_v1.0", None),
        ("fruit_v1.0\n", None),
        ("_v1.0", None),
        (7, None),
        (None, None),
    ],
)
def test_parse_type(value: object, expected: object) -> None:
    assert parse_type(value) == expected


def test_format_type() -> None:
    assert format_type("fruit", (2, 10)) == "fruit_v2.10"


# --- documents out ---------------------------------------------------------------------------


def test_to_doc_of_a_new_model_has_type_and_fields_only() -> None:
    assert a_fruit().to_doc() == {
        "type": "fruit_v1.2",
        "fruit_id": "f1",
        "color": "red",
        "updated_on": "2026-11-27T11:36:01.123456Z",
        "weight": 1.0,
    }


def test_to_doc_puts_id_rev_and_type_first() -> None:
    doc = a_fruit(id="abc", rev="1-x").to_doc()
    assert list(doc)[:3] == ["_id", "_rev", "type"]
    assert (doc["_id"], doc["_rev"]) == ("abc", "1-x")
    assert "id" not in doc
    assert "rev" not in doc


def test_tombstone_is_stored_only_when_set() -> None:
    assert "tombstone" not in a_fruit().to_doc()
    doc = a_fruit(tombstone=True).to_doc()
    assert doc["tombstone"] is True
    assert Fruit.from_doc(doc).tombstone is True


def test_computed_fields_are_stored_but_not_read_back() -> None:
    account = Account(email="a@example.org")
    doc = account.to_doc()
    assert doc["domain"] == "example.org"
    assert Account.from_doc(doc) == account


# --- documents in ----------------------------------------------------------------------------


def test_from_doc_maps_id_and_rev() -> None:
    doc = {"_id": "abc", "_rev": "2-y", **a_fruit().to_doc()}
    fruit = Fruit.from_doc(doc)
    assert (fruit.id, fruit.rev) == ("abc", "2-y")
    assert fruit == a_fruit(id="abc", rev="2-y")


def test_from_doc_ignores_couchdbs_own_members() -> None:
    doc = {
        **a_fruit(id="abc", rev="1-x").to_doc(),
        "_attachments": {"a.txt": {"stub": True}},
        "_conflicts": ["1-z"],
    }
    assert Fruit.from_doc(doc) == a_fruit(id="abc", rev="1-x")


def test_from_doc_rejects_an_unknown_field() -> None:
    doc = {"_id": "abc", **a_fruit().to_doc(), "flavour": "sweet"}
    with pytest.raises(ModelValidationError) as caught:
        Fruit.from_doc(doc)
    assert caught.value.errors == (("flavour", "Extra inputs are not permitted"),)
    assert caught.value.doc_id == "abc"


def test_from_doc_names_the_doc_and_every_bad_field() -> None:
    doc = {"_id": "abc", "type": "fruit_v1.2", "fruit_id": 3, "updated_on": "soon"}
    with pytest.raises(ModelValidationError) as caught:
        Fruit.from_doc(doc)
    error = caught.value
    assert (error.model, error.doc_id) == ("Fruit", "abc")
    assert error.fields == ("fruit_id", "color", "updated_on")
    assert "'abc'" in str(error)
    assert "fruit_id: Input should be a valid string" in str(error)
    assert isinstance(error.__cause__, pydantic.ValidationError)


@pytest.mark.parametrize(
    ("found", "match"),
    [
        (None, "has no type"),
        ("fruit", "has type 'fruit'"),
        ("fruit_v1", "has type 'fruit_v1'"),
        (12, "has type 12"),
        ("vegetable_v1.2", "not one of Fruit"),
        ("fruity_v1.0", "not one of Fruit"),
        ("fruit_v1.3", "newer than Fruit"),
        ("fruit_v2.0", "never downgraded"),
    ],
)
def test_from_doc_refuses_the_wrong_type(found: object, match: str) -> None:
    doc = {**a_fruit().to_doc(), "_id": "abc", "type": found}
    if found is None:
        del doc["type"]
    with pytest.raises(WrongTypeError, match=match) as caught:
        Fruit.from_doc(doc)
    assert (caught.value.doc_id, caught.value.found) == ("abc", found)
    assert caught.value.expected == "fruit_v1.2"
    assert isinstance(caught.value, InvalidInputError)


# --- validation ------------------------------------------------------------------------------


def test_construction_raises_the_typed_error() -> None:
    with pytest.raises(ModelValidationError) as caught:
        a_fruit(color=1)
    assert caught.value.fields == ("color",)
    assert caught.value.doc_id is None
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, CouchError)


def test_construction_refuses_unknown_fields() -> None:
    with pytest.raises(ModelValidationError, match="colour: Extra inputs are not permitted"):
        Fruit(fruit_id="f1", color="red", colour="red", updated_on=NOW)  # type: ignore[call-arg]


def test_assignment_is_validated() -> None:
    fruit = a_fruit(id="abc")
    with pytest.raises(ModelValidationError, match="weight") as caught:
        fruit.weight = "heavy"  # type: ignore[assignment]
    assert caught.value.doc_id == "abc"
    assert fruit.weight == 1.0
    fruit.weight = 2.5
    assert fruit.weight == 2.5


def test_model_copy_validates_the_update() -> None:
    fruit = a_fruit()
    assert fruit.model_copy(update={"color": "blue"}).color == "blue"
    assert fruit.color == "red"
    with pytest.raises(ModelValidationError, match="color"):
        fruit.model_copy(update={"color": None})
    with pytest.raises(ModelValidationError, match="colour"):
        fruit.model_copy(update={"colour": "blue"})


def test_model_validate_raises_the_typed_error() -> None:
    with pytest.raises(ModelValidationError, match="'abc'"):
        Fruit.model_validate({"id": "abc", "fruit_id": "f1"})
    with pytest.raises(ModelValidationError):
        Fruit.model_validate_json(b'{"fruit_id": 1}')


def test_error_messages_do_not_repeat_the_values() -> None:
    with pytest.raises(ModelValidationError) as caught:
        a_fruit(updated_on="hunter2-secret")
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in str(caught.value.__cause__)


@pytest.mark.parametrize("bad_id", ["", "_private", "_design/fruit", "_local/x"])
def test_a_model_id_is_an_ordinary_doc_id(bad_id: str) -> None:
    with pytest.raises(
        ModelValidationError, match="id: a model's document id must be neither empty"
    ):
        a_fruit(id=bad_id)


def test_a_model_id_is_valid_utf_8() -> None:
    with pytest.raises(ModelValidationError, match="id: a document id must be valid UTF-8"):
        a_fruit(id="a\ud800")


# --- declaration errors ----------------------------------------------------------------------


def test_a_concrete_model_needs_type_name_and_version() -> None:
    with pytest.raises(ModelDefinitionError, match="needs type_name= and version=") as caught:

        class Bare(Model):
            x: int

    assert caught.value.model.endswith("Bare")
    assert isinstance(caught.value, TypeError)
    with pytest.raises(ModelDefinitionError, match="needs type_name"):

        class NoVersion(Model, type_name="x"):
            pass


def test_a_subclass_of_a_concrete_model_needs_its_own_type_name() -> None:
    with pytest.raises(ModelDefinitionError, match="needs type_name"):

        class RedFruit(Fruit):
            pass


@pytest.mark.parametrize("type_name", ["Fruit", "1fruit", "fruit-x", "", "_fruit", "früt"])
def test_bad_type_names(type_name: str) -> None:
    with pytest.raises(ModelDefinitionError, match="type_name must match"):

        class Bad(Model, type_name=type_name, version="1.0"):
            pass


@pytest.mark.parametrize("version", ["1", "1.0.0", "v1.0", "01.0", "1.01", "", "1.x"])
def test_bad_versions(version: str) -> None:
    with pytest.raises(ModelDefinitionError, match="version must be"):

        class Bad(Model, type_name="bad", version=version):
            pass


def test_a_float_version_is_refused() -> None:
    with pytest.raises(ModelDefinitionError, match="version must be"):

        class Bad(Model, type_name="bad", version=1.0):
            pass


def test_reserved_field_names() -> None:
    with pytest.raises(ModelDefinitionError, match="must not be called 'type'"):

        class Typed(Model, type_name="typed", version="1.0"):
            type: str

    with pytest.raises(ModelDefinitionError, match="Model's own"):

        class OwnId(Model, type_name="own", version="1.0"):
            id: int  # type: ignore[assignment]

    with pytest.raises(ModelDefinitionError, match="must not start with '_'"):

        class Private(Model, type_name="private", version="1.0"):
            _secret: str


def test_aliases_are_refused() -> None:
    with pytest.raises(ModelDefinitionError, match="alias"):

        class Aliased(Model, type_name="aliased", version="1.0"):
            name: str = pydantic.Field(alias="Name")


def test_an_abstract_model_takes_no_type_name() -> None:
    with pytest.raises(ModelDefinitionError, match="abstract model takes no"):

        class Both(Model, abstract=True, type_name="both", version="1.0"):
            pass


def test_unknown_class_keywords_are_refused() -> None:
    with pytest.raises(TypeError):

        class Typo(Model, type_name="typo", version="1.0", index={"a": ("x",)}):
            x: int


@pytest.mark.parametrize(
    ("indexes", "match"),
    [
        ({"by_x": ("nope",)}, "unknown field 'nope'"),
        ({"by_x": ("id",)}, "unknown field 'id'"),
        ({"by_x": "x"}, "needs a tuple of field names"),
        ({"by_x": ()}, "needs a tuple of field names"),
        ({"by_x": ("x", "x")}, "names a field twice"),
        ({"x": ("x", "y")}, "two indexes are called 'x'"),
        ({"bad-name": ("x",)}, "index name must match"),
    ],
)
def test_bad_compound_indexes(indexes: dict[str, Any], match: str) -> None:
    with pytest.raises(ModelDefinitionError, match=match):

        class Bad(Model, type_name="bad", version="1.0", indexes=indexes):
            x: Annotated[int, Indexed()]
            y: int


def test_a_marker_must_sit_on_the_outermost_annotated() -> None:
    with pytest.raises(ModelDefinitionError, match="outermost Annotated"):

        class Nested(Model, type_name="nested", version="1.0"):
            x: Annotated[str, Indexed()] | None = None


def test_an_optional_field_can_be_indexed() -> None:
    class Optional(Model, type_name="optional", version="1.0"):
        x: Annotated[str | None, Indexed()] = None

    assert Optional.couch_info().index("x").view_name == "optional_by_x"


def test_unresolvable_annotations_fail_at_class_creation() -> None:
    with pytest.raises(ModelDefinitionError, match="could not be resolved"):

        class Early(Model, type_name="early", version="1.0"):
            later: DefinedLater  # type: ignore[name-defined]  # noqa: F821
