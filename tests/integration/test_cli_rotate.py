"""``rotate`` through the installed console script: documents written under an old key are
re-encrypted and re-signed under the key ring file's active key."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import tor_async_couchdb as tac
from conftest import unique_db_name
from support.cli import Result, cli_env, run_cli
from support.protect import secret
from tor_async_couchdb._protect import SIGNATURE_FIELD
from tor_async_couchdb.testing import CouchServer

MODELS = """
from typing import Annotated

import tor_async_couchdb as tac


class Account(tac.Model, type_name="account", version="1.0"):
    name: str
    email: Annotated[str, tac.Indexed(), tac.Encrypted(blind_index=True)]
"""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def account_model(workdir: Path) -> type[tac.Model]:
    """The module's model, imported as the console script imports it."""
    sys.path.insert(0, str(workdir))
    try:
        from account_models import Account  # type: ignore[import-not-found]

        return Account  # type: ignore[no-any-return]
    finally:
        sys.path.remove(str(workdir))


def ring_json(active: str, *accepted: str, retired: tuple[str, ...] = ()) -> dict[str, Any]:
    keys = {k: b64url(secret(int(k[1:]))) for k in (active, *accepted)}
    return {"active": active, "keys": keys, "retired": list(retired)}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A service checkout: its models module and key ring files."""
    (tmp_path / "account_models.py").write_text(MODELS, encoding="utf-8")
    for name, ring in {
        "old.json": ring_json("k1"),
        "new.json": ring_json("k2", "k1"),
        "retired.json": ring_json("k2", retired=("k1",)),
    }.items():
        (tmp_path / name).write_text(json.dumps(ring), encoding="utf-8")
    return tmp_path


@pytest.fixture
async def dbname(couch: tac.CouchDB, workdir: Path) -> AsyncIterator[str]:
    """A database with 5 accounts written under key k1; deleted after the test."""
    account = account_model(workdir)
    name = unique_db_name("rotate")
    codecs = tac.Protection.from_keyring(tac.KeyRing.from_file(workdir / "old.json"))
    db = couch.database(name, codecs=codecs)
    await db.create()
    await db.install_views(account)
    for n in range(5):
        await db.save(account(id=f"a{n}", name=f"n{n}", email=f"a{n}@example.com"))
    try:
        yield name
    finally:
        await db.delete_database(missing_ok=True)


def rotate(server: CouchServer, cwd: Path, db: str, *extra: str, **env: str) -> Result:
    return run_cli(
        "rotate", db, "--models", "account_models", *extra, server=server, cwd=cwd,
        env=cli_env(server, **env),
    )  # fmt: skip


async def kids(couch: tac.CouchDB, name: str) -> set[str]:
    db = couch.database(name)
    found: set[str] = set()
    async for row in db.all_docs(include_docs=True):
        doc = row["doc"]
        if doc.get("type") == "account_v1.0":
            found |= {doc[SIGNATURE_FIELD]["kid"], doc["email"]["kid"]}
    return found


async def test_rotate_moves_every_document_to_the_active_key(
    couch: tac.CouchDB, couch_server: CouchServer, workdir: Path, dbname: str
) -> None:
    result = rotate(couch_server, workdir, dbname, "--keyring", "new.json", "--page-size", "2")
    assert result.code == 0, result
    assert "account: 5 read, 5 rotated, 0 skipped (now under key k2)" in result.out
    assert await kids(couch, dbname) == {"k2"}
    again = rotate(couch_server, workdir, dbname, "--keyring", "new.json", "--json")
    assert again.code == 0, again
    assert again.json()["models"] == [
        {"type": "account", "key_id": "k2", "seen": 5, "rotated": 0, "skipped": 0}
    ]
    # The old key can be retired now: the documents read under the new key alone.
    ring = tac.KeyRing.from_file(workdir / "retired.json")
    async with tac.CouchDB(
        couch_server.url, auth=couch_server.auth, codecs=tac.Protection.from_keyring(ring)
    ) as retired:
        db = retired.database(dbname)
        assert len([a async for a in db.all(account_model(workdir))]) == 5


async def test_the_key_ring_comes_from_the_environment_too(
    couch: tac.CouchDB, couch_server: CouchServer, workdir: Path, dbname: str
) -> None:
    text = (workdir / "new.json").read_text(encoding="utf-8")
    result = rotate(couch_server, workdir, dbname, TOR_ASYNC_COUCHDB_KEYRING=text)
    assert result.code == 0, result
    assert await kids(couch, dbname) == {"k2"}
    assert text not in result.out + result.err


async def test_a_key_retired_too_early_fails_naming_the_document_and_writes_nothing(
    couch: tac.CouchDB, couch_server: CouchServer, workdir: Path, dbname: str
) -> None:
    result = rotate(couch_server, workdir, dbname, "--keyring", "retired.json")
    assert result.code == 1, result
    assert "'a0'" in result.err
    assert "k1" in result.err
    assert await kids(couch, dbname) == {"k1"}
    for key in ring_json("k2", "k1")["keys"].values():
        assert key not in result.out + result.err


def test_without_a_key_ring_it_fails_before_any_request(
    couch_server: CouchServer, workdir: Path
) -> None:
    result = rotate(couch_server, workdir, "nowhere", TOR_ASYNC_COUCHDB_KEYRING="")
    assert result.code == 1, result
    assert "TOR_ASYNC_COUCHDB_KEYRING holds no key ring" in result.err
