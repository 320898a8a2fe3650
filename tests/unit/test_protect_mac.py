"""The keyed HMAC-SHA256 of signatures and blind indexes is RFC 2104's HMAC, and the views of
blind-indexed fields emit the envelope's blind index only."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tor_async_couchdb as tac
from tor_async_couchdb._models._views import map_function, view_members
from tor_async_couchdb._protect._mac import KeyedSha256


@given(st.binary(max_size=200), st.binary(max_size=600))
def test_keyed_sha256_is_hmac_sha256(key: bytes, message: bytes) -> None:
    assert KeyedSha256(key).digest(message) == hmac.new(key, message, hashlib.sha256).digest()


def test_keyed_sha256_hides_its_key() -> None:
    assert "secret" not in repr(KeyedSha256(b"secret"))


class Customer(tac.Model, type_name="customer", version="1.0"):
    name: Annotated[str, tac.Indexed()]
    email: Annotated[str, tac.Indexed(), tac.Encrypted(blind_index=True)]
    phone: Annotated[str, tac.Encrypted()]


def test_view_members_name_the_blind_indexed_fields() -> None:
    assert view_members(Customer) == {"email": "bi"}


@pytest.mark.parametrize(
    ("field", "emitted"), [("email", 'emit(value["bi"]'), ("name", 'emit(doc["name"]')]
)
def test_the_view_of_a_blind_indexed_field_emits_its_blind_index(field: str, emitted: str) -> None:
    ddoc = next(
        d for d in tac.design_docs([Customer]) if d["_id"] == f"_design/customer_by_{field}"
    )
    (view,) = ddoc["views"].values()
    assert emitted in view["map"]
    assert 'emit(doc["email"]' not in view["map"]


def test_without_members_the_map_function_is_unchanged() -> None:
    info = Customer.couch_info()
    index = info.index("email")
    assert map_function(info, index) == map_function(info, index, {})
    assert "bi" in map_function(info, index, {"email": "bi"})
