"""Hashed fields: argon2id PHC strings, off the event loop; a stored hash is never hashed again."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

import pytest

import tor_async_couchdb as tac
from support.protect import decode, encode, ring
from tor_async_couchdb._exceptions import InvalidInputError, UnprotectedField, UnsignableDocument
from tor_async_couchdb._protect import (
    PENDING_KEY,
    Argon2Policy,
    FieldContext,
    Hashed,
    HashedCodec,
    HashedSecret,
    Protection,
)

PHC = re.compile(r"\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}")
CONTEXT = FieldContext(doc_id="u1", type_name="account", path="password", marker=Hashed())


class Account(tac.Model, type_name="account", version="1.0"):
    name: str
    password: Annotated[HashedSecret, Hashed()]
    api_token: Annotated[HashedSecret | None, Hashed()] = None


@pytest.fixture(scope="module")
def codec() -> HashedCodec:
    return HashedCodec()


def test_policy_is_at_least_owasp_minimum_and_rises() -> None:
    assert Argon2Policy() == Argon2Policy(memory_kib=19 * 1024, time_cost=2, parallelism=1)
    Argon2Policy(memory_kib=64 * 1024, time_cost=3, parallelism=2)
    for weak in ({"memory_kib": 19 * 1024 - 1}, {"time_cost": 1}, {"salt_len": 8}):
        with pytest.raises(InvalidInputError, match="OWASP"):
            Argon2Policy(**weak)


async def test_hash_is_an_argon2id_phc_string_that_verifies(codec: HashedCodec) -> None:
    secret = await codec.hash("hunter2")
    assert secret.phc is not None
    assert PHC.fullmatch(secret.phc)
    assert await secret.verify("hunter2") is True
    assert await secret.verify("hunter3") is False
    assert (await codec.hash("hunter2")).phc != secret.phc  # a salt of its own


async def test_needs_rehash_when_the_policy_rises(codec: HashedCodec) -> None:
    secret = await codec.hash("hunter2")
    assert secret.needs_rehash(Argon2Policy()) is False
    assert secret.needs_rehash(Argon2Policy(memory_kib=38 * 1024)) is True
    assert secret.needs_rehash(Argon2Policy(time_cost=3)) is True


async def test_hashing_runs_off_the_event_loop(codec: HashedCodec) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        await codec.hash("hunter2")
    finally:
        ticker.cancel()
    assert ticks >= 3  # the loop kept running while argon2 worked (tens of ms)


def test_a_pending_secret_hides_its_plaintext() -> None:
    pending = HashedSecret.new("hunter2")
    assert "hunter2" not in repr(pending)
    assert "hunter2" not in str(pending)
    assert not pending.is_hashed
    assert pending.phc is None
    assert pending != HashedSecret.new("hunter2")  # plaintexts are not compared by value
    with pytest.raises(InvalidInputError, match="not hashed yet"):
        pending.needs_rehash(Argon2Policy())


async def test_repr_of_a_hash_shows_parameters_only(codec: HashedCodec) -> None:
    secret = await codec.hash("hunter2")
    assert repr(secret) == "HashedSecret(argon2id m=19456 t=2 p=1)"
    assert secret == HashedSecret(str(secret.phc))
    assert hash(secret) == hash(str(secret.phc))


def test_a_bare_string_must_be_a_phc_string_never_a_password() -> None:
    with pytest.raises(tac.ModelValidationError) as caught:
        Account(name="a", password="hunter2")  # type: ignore[arg-type]
    assert "hunter2" not in str(caught.value)
    assert caught.value.fields == ("password",)
    with pytest.raises(InvalidInputError):
        HashedSecret("$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g")


async def test_save_hashes_once_and_get_then_save_keeps_the_stored_hash() -> None:
    protection = Protection.from_keyring(ring("k1"))
    account = Account(id="u1", name="a", password=HashedSecret.new("hunter2"))
    assert account.to_doc()["password"] == {PENDING_KEY: "hunter2"}  # only the codec sees it
    stored = await encode(protection, account)
    assert PHC.fullmatch(stored["password"])
    assert stored["api_token"] is None
    read = decode(protection, Account, dict(stored))
    assert read.password.phc == stored["password"]
    assert await read.password.verify("hunter2")
    again = await encode(protection, read.model_copy(update={"name": "b"}))
    assert again["password"] == stored["password"]  # not hashed again


async def test_codec_passes_hashes_through_and_refuses_anything_else(codec: HashedCodec) -> None:
    phc = (await codec.hash("x")).phc
    assert await codec.encode(phc, CONTEXT) == phc
    assert codec.decode(phc, CONTEXT) == phc
    assert codec.decode(None, CONTEXT) is None
    assert codec.index_keys(phc, CONTEXT) is None
    bad: list[Any] = ["hunter2", {PENDING_KEY: "hunter2"}, 3, {"a": 1}]
    for value in bad:
        with pytest.raises(UnprotectedField, match="'password'"):
            codec.decode(value, CONTEXT)
    with pytest.raises(UnprotectedField):
        await codec.encode("hunter2", CONTEXT)


def test_signing_refuses_a_secret_the_hashed_codec_did_not_hash() -> None:
    # A mapper that forgot the HashedCodec fails instead of storing the plaintext.
    protection = Protection.from_keyring(ring("k1"))
    doc = Account(id="u1", name="a", password=HashedSecret.new("hunter2")).to_doc()
    with pytest.raises(UnsignableDocument, match="not hashed") as caught:
        protection.signature.sign(doc)
    assert "hunter2" not in str(caught.value)
