"""Names, JSON and query strings: the checks made before any request."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections import OrderedDict, defaultdict

import pytest

import tor_async_couchdb as tac
from tor_async_couchdb._couch._urls import check_db_name, doc_path, query_string
from tor_async_couchdb._json import dumps, loads
from tor_async_couchdb._transport import MockRequest, MockTransport, Response


@pytest.mark.parametrize(
    "name", ["a", "abc", "a0_$()+-/", "_users", "_replicator", "_global_changes", "a" * 238]
)
def test_valid_db_names(name: str) -> None:
    assert check_db_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "Bad_Name", "1abc", "_private", "a b", "a.b", "é", "a" * 239, "a\n"]
)
def test_invalid_db_names(name: str) -> None:
    with pytest.raises(tac.InvalidNameError):
        check_db_name(name)


def test_db_name_must_be_a_str() -> None:
    with pytest.raises(tac.InvalidNameError, match="must be a str"):
        check_db_name(b"abc")


@pytest.mark.parametrize(
    ("doc_id", "path"),
    [
        ("plain", "plain"),
        ("a/b", "a%2Fb"),
        ("a+b c%d", "a%2Bb%20c%25d"),
        ("é€", "%C3%A9%E2%82%AC"),
        ("_design/x/y", "_design/x%2Fy"),
        ("_local/a b", "_local/a%20b"),
        ("q?x=1#f", "q%3Fx%3D1%23f"),
    ],
)
def test_doc_path_encodes_every_reserved_character(doc_id: str, path: str) -> None:
    assert doc_path(doc_id) == path


@dataclasses.dataclass
class _Point:
    x: float


class _Weird(enum.Enum):
    NAN = math.nan


@pytest.mark.parametrize(
    "value",
    [
        {1, 2},
        b"bytes",
        object(),
        {1: "int key"},
        math.nan,
        [1.0, math.inf],
        {"a": {"b": -math.inf}},
        {"a": OrderedDict(x=math.nan)},
        {"a": defaultdict(list, x=[math.inf])},
        {"a": _Point(x=math.nan)},
        {"a": _Weird.NAN},
    ],
)
def test_dumps_rejects_what_json_cannot_hold(value: object) -> None:
    with pytest.raises(tac.NotJSONError):
        dumps(value, what="document")


class _EqualsNone(dict[str, int]):
    """Compares equal to None, yet is written as an object: it must not pass for a None."""

    def __eq__(self, other: object) -> bool:
        return other is None or other is self

    def __hash__(self) -> int:  # type: ignore[override]
        return 0


@dataclasses.dataclass
class _NoneField:
    x: None = None


def _bulk(*docs: dict[str, object]) -> dict[str, object]:
    plain = [{"_id": f"d{i}", "n": i, "note": None, "tags": ["a"]} for i in range(50)]
    return {"docs": [*plain[:25], *docs, *plain[25:]]}


@pytest.mark.parametrize(
    "value",
    [
        # Documents with None values, where the nulls are counted instead of walked: a NaN
        # beside them must still be found, wherever it is.
        _bulk({"_id": "x", "v": math.nan}),
        _bulk({"_id": "x", "v": None, "w": -math.inf}),
        _bulk({"_id": "x", "tags": [None, math.nan]}),
        _bulk({"_id": "x", "nested": {"a": None, "b": math.inf}}),
        _bulk({"_id": "x", "s": "null", "v": math.nan, "w": None}),
        _bulk({"_id": "x", "v": math.nan, "odd": _EqualsNone()}),
        _bulk(OrderedDict(_id="x", v=math.nan, w=None)),
        {"docs": [{"_id": "x", "v": None}], "also": math.nan},
        {"a": None, "b": [math.nan]},
        {"a": None, "b": (None, math.inf)},
        {"a": _NoneField(), "b": math.nan},
    ],
)
def test_dumps_finds_nan_among_none_values(value: object) -> None:
    with pytest.raises(tac.NotJSONError, match="NaN or an infinity"):
        dumps(value, what="bulk request")


def test_dumps_passes_none_values_and_the_word_null() -> None:
    body = _bulk({"_id": "x", "s": "null and nullable", "v": None, "k": {"null": [None]}})
    assert loads(dumps(body), method="POST", url="u") == body


def test_dumps_encodes_plain_json_compactly() -> None:
    assert dumps({"a": [1, 2.5, None, True, "é"]}) == '{"a":[1,2.5,null,true,"é"]}'.encode()


def test_loads_errors_name_the_request() -> None:
    with pytest.raises(tac.ProtocolError) as caught:
        loads(b"not json", method="GET", url="http://h/db")
    assert caught.value.method == "GET"
    assert caught.value.url == "http://h/db"
    assert "GET http://h/db" in str(caught.value)


def test_query_string_encodes_keys_as_json_and_skips_none() -> None:
    query = query_string(
        {"key": ["a", 1], "startkey": "x y", "limit": 5, "descending": True, "rev": None}
    )
    assert query == "?key=%5B%22a%22%2C1%5D&startkey=%22x%20y%22&limit=5&descending=true"
    assert query_string({}) == ""
    assert query_string({"open_revs": "all"}) == "?open_revs=all"
    assert query_string({"open_revs": ["1-a"]}) == "?open_revs=%5B%221-a%22%5D"


def test_query_string_rejects_nan_keys() -> None:
    with pytest.raises(tac.NotJSONError):
        query_string({"key": math.nan})


async def test_bad_input_is_rejected_before_any_request() -> None:
    transport = MockTransport(lambda request: Response(201, {}, b'{"ok":true}'))
    async with tac.CouchDB("http://127.0.0.1:5984", transport=transport) as couch:
        with pytest.raises(tac.InvalidNameError):
            couch.database("Bad_Name")
        db = couch.database("good")
        for doc in ({"_id": "s", "v": {1}}, {"_id": "b", "v": b"x"}, {"_id": "n", "v": math.nan}):
            with pytest.raises(tac.NotJSONError):
                await db.put_doc(doc)
            with pytest.raises(tac.NotJSONError):
                await db.post_doc(doc)
            with pytest.raises(tac.NotJSONError):
                await db.bulk_docs([{"_id": "ok"}, doc])
        with pytest.raises(tac.InvalidInputError):
            await db.put_doc({"no": "id"})
        with pytest.raises(tac.InvalidInputError):
            await db.bulk_docs([{"_id": "a"}, {"_id": "a"}])
        with pytest.raises(tac.InvalidInputError):
            await db.delete_doc("a", "")
        with pytest.raises(tac.InvalidInputError):
            await db.put_attachment("a", "_bad", b"x", content_type="text/plain")
        with pytest.raises(tac.InvalidInputError):
            await db.put_attachment("a", "f", "text", content_type="text/plain")  # type: ignore[arg-type]
        with pytest.raises(tac.InvalidInputError):
            await anext(aiter(db.all_docs(page_size=0)))
    assert transport.requests == []


def test_mock_request_header_lookup_ignores_case() -> None:
    request = MockRequest("GET", "/", (("Accept", "a"),), None)
    assert request.header("accept") == "a"
    assert request.header("x") is None
