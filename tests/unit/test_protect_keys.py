"""The key ring: ids, one active key, accepted and retired keys, loaders; secrets never shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.protect import ring, secret
from tor_async_couchdb._exceptions import (
    CouchError,
    KeyRingError,
    MissingKeyError,
    RetiredKeyError,
    UnknownKeyError,
)
from tor_async_couchdb._protect import Key, KeyRing
from tor_async_couchdb._protect._encoding import b64decode, b64encode


def stored_form() -> dict[str, object]:
    return {
        "active": "k2",
        "keys": {"k2": b64encode(secret(2)), "k1": b64encode(secret(1))},
        "retired": ["k0"],
    }


def test_active_key_writes_and_every_live_key_reads() -> None:
    keys = ring("k2", "k1", retired=("k0",))
    assert keys.active.key_id == "k2"
    assert [key.key_id for key in keys.live] == ["k2", "k1"]
    assert keys.get("k1").secret == secret(1)


def test_retired_key_is_refused_by_name_with_document_and_field() -> None:
    with pytest.raises(RetiredKeyError) as caught:
        ring("k2", retired=("k0",)).get("k0", doc_id="d1", field="email")
    assert (caught.value.doc_id, caught.value.field, caught.value.key_id) == ("d1", "email", "k0")
    assert "'d1'" in str(caught.value)
    assert "'email'" in str(caught.value)
    assert isinstance(caught.value, CouchError)


def test_unknown_key_id_is_refused() -> None:
    with pytest.raises(UnknownKeyError, match="'k9'"):
        ring("k2").get("k9", doc_id="d1")
    with pytest.raises(UnknownKeyError):
        ring("k2").get(12345)


def test_repr_and_errors_never_show_a_secret() -> None:
    keys = ring("k2", "k1")
    assert repr(keys) == "KeyRing(active='k2', accepted=['k1'], retired=[])"
    assert secret(2).hex() not in repr(keys.active)
    assert "secret" not in repr(keys.active)


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: KeyRing([Key("k1", secret(1))], active="k2"), MissingKeyError),
        (lambda: KeyRing([Key("k1", secret(1))] * 2, active="k1"), KeyRingError),
        (lambda: KeyRing([Key("k1", secret(1))], active="k1", retired=["k1"]), KeyRingError),
        (lambda: Key("k1", b"short"), KeyRingError),
        (lambda: Key("bad id!", secret(1)), KeyRingError),
    ],
)
def test_bad_rings_are_refused(make: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        make()  # type: ignore[operator]


def test_from_json_file_and_env_give_the_same_ring(tmp_path: Path) -> None:
    text = json.dumps(stored_form())
    path = tmp_path / "keyring.json"
    path.write_text(text)
    for loaded in (
        KeyRing.from_json(text),
        KeyRing.from_file(path),
        KeyRing.from_env(environ={"TOR_ASYNC_COUCHDB_KEYRING": text}),
        KeyRing.from_env("MY_RING", environ={"MY_RING": text}),
    ):
        assert repr(loaded) == "KeyRing(active='k2', accepted=['k1'], retired=['k0'])"
        assert loaded.get("k1").secret == secret(1)


def test_loaders_fail_with_typed_errors_that_quote_no_secret(tmp_path: Path) -> None:
    leaky = json.dumps(stored_form())[:-3]  # truncated JSON holding secrets
    with pytest.raises(KeyRingError) as caught:
        KeyRing.from_json(leaky)
    assert b64encode(secret(2)) not in str(caught.value)
    with pytest.raises(MissingKeyError):
        KeyRing.from_env(environ={})
    with pytest.raises(MissingKeyError):
        KeyRing.from_file(tmp_path / "missing.json")
    with pytest.raises(KeyRingError, match="base64url"):
        KeyRing.from_mapping({"active": "k1", "keys": {"k1": "not base64!"}})
    with pytest.raises(KeyRingError):
        KeyRing.from_mapping({"keys": {}})


def test_generated_secrets_are_random_256_bit() -> None:
    first, second = KeyRing.generate_secret(), KeyRing.generate_secret()
    assert first != second
    assert len(b64decode(first) or b"") == 32


@pytest.mark.parametrize("text", ["a=", "a b", "AAF", "+/AA", "A"])
def test_base64url_is_strict(text: str) -> None:
    # One spelling per value: padding, other alphabets, odd lengths and stray bits refused.
    assert b64decode(text) is None
