"""``reconcile`` through the installed console script: runs until a signal, resolves what it
sees, reports bad documents, saves its checkpoint and stops gracefully."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

import tor_async_couchdb as tac
from conftest import unique_db_name
from support.cli import SCRIPT, cli_env, run_cli
from support.waiting import eventually
from tor_async_couchdb._merge import seal
from tor_async_couchdb.testing import CouchServer

MODELS = """
from pydantic import Field

import tor_async_couchdb as tac


class Fruit(tac.Mergeable, type_name="fruit", version="1.0"):
    color: str = "green"
    eaten: tac.PNCounter = Field(default_factory=tac.PNCounter)
"""


class Fruit(tac.Mergeable, type_name="fruit", version="1.0"):
    """The model of MODELS, as the test writes its leaves."""

    color: str = "green"
    eaten: tac.PNCounter = Field(default_factory=tac.PNCounter)


@pytest.fixture
async def db(couch: tac.CouchDB) -> AsyncIterator[tac.Database]:
    database = couch.database(unique_db_name("reconcile"))
    await database.create()
    try:
        yield database
    finally:
        await database.delete_database(missing_ok=True)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "fruit_models.py").write_text(MODELS, encoding="utf-8")
    return tmp_path


def _as_is(doc: dict[str, Any]) -> dict[str, Any]:
    return doc


async def _conflict(
    db: tac.Database, doc_id: str, *eaten: int, bad: bool = False, sign: Any = _as_is
) -> None:
    """Leaves of ``doc_id`` as replication leaves them: one child of a common base per count
    (the last one hand-edited into an unreadable counter if ``bad``; hand-edited after
    ``sign``, which each document goes through, so that its signature fails)."""
    base = Fruit(id=doc_id)
    seal(base, tac.HybridClock("setup"))
    await db.bulk_docs([sign({**base.to_doc(), "_rev": "1-a"})], new_edits=False)
    for number, count in enumerate(eaten):
        fruit = Fruit.from_doc({**base.to_doc(), "_rev": "1-a"})
        fruit.eaten.add(count)
        fruit.color = f"c{number}"
        seal(fruit, tac.HybridClock(f"w{number}"))
        leaf = {
            **fruit.to_doc(),
            "_rev": f"2-{number}b",
            "_revisions": {"start": 2, "ids": [f"{number}b", "a"]},
        }
        leaf = sign(leaf)
        if bad and number == len(eaten) - 1:
            leaf["eaten"] = {"p": {"w0": -1}, "n": {}}
        await db.bulk_docs([leaf], new_edits=False)


async def _started(
    server: CouchServer, cwd: Path, db: str, *extra: str, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "reconcile",
        db,
        "--models",
        "fruit_models",
        "--settle",
        "0.1",
        "--refresh",
        "0.2",
        "--json",
        "--log-level",
        "info",
        *extra,
        cwd=cwd,
        env=cli_env(server, **(env or {})),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    try:  # until it says it runs (a signal before its handlers exist would just kill it)
        async with asyncio.timeout(60):
            while b"reconciling" not in await process.stderr.readline():
                pass
    except BaseException:
        process.kill()
        await process.wait()
        raise
    return process


async def _stop(
    process: asyncio.subprocess.Process, number: int
) -> tuple[int, dict[str, Any], str]:
    process.send_signal(number)
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    except BaseException:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, json.loads(out), err.decode()


async def _resolved(db: tac.Database, doc_id: str) -> bool:
    return "_conflicts" not in await db.get_doc(doc_id, conflicts=True)


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_reconcile_resolves_until_a_signal_and_reports_bad_documents(
    couch_server: CouchServer, workdir: Path, db: tac.Database, number: int
) -> None:
    await _conflict(db, "f1", 2, 3)
    await _conflict(db, "f2", 1, 5, bad=True)
    process = await _started(couch_server, workdir, db.name)
    try:
        await eventually(lambda: _resolved(db, "f1"), seconds=60)
        await _conflict(db, "f3", 4, 6)  # while it runs
        await eventually(lambda: _resolved(db, "f3"), seconds=60)
    finally:
        code, metrics, err = await _stop(process, number)
    assert code == 0, err
    assert Fruit.from_doc(await db.get_doc("f1")).eaten.value == 5
    assert Fruit.from_doc(await db.get_doc("f3")).eaten.value == 10
    assert metrics["resolved"] == 2
    assert metrics["unresolvable"] == {"unreadable_metadata": 1}  # counted, never guessed
    assert metrics["failed"] == 0
    assert not await _resolved(db, "f2")  # left as it is
    assert "left f2 unresolved" in err
    saved = await db.get_doc("_local/tor-async-couchdb-reconciler")
    assert saved["seq"] == metrics["checkpointed"] == metrics["last_seq"]

    # Started again, it goes on from its checkpoint (at most the last change again, as a
    # server may deliver it): nothing is resolved twice.
    again = await _started(couch_server, workdir, db.name)
    await asyncio.sleep(1)
    code, second, err = await _stop(again, signal.SIGTERM)
    assert code == 0, err
    assert second["changes"] <= 1 < metrics["changes"]
    assert second["resolved"] == 0


async def test_a_signal_while_a_batch_settles_stops_it_gracefully(
    couch_server: CouchServer, workdir: Path, db: tac.Database
) -> None:
    process = await _started(couch_server, workdir, db.name, "--settle", "5", "--defer", "1")
    await db.put_doc({"_id": "plain"})  # a batch settling for 5 s when the signal comes
    await asyncio.sleep(0.5)
    code, metrics, err = await _stop(process, signal.SIGTERM)
    assert code == 0, err
    assert metrics["failed"] == 0


async def test_reconcile_fails_plainly_for_a_missing_database_or_models(
    couch_server: CouchServer, workdir: Path
) -> None:
    missing = run_cli(
        "reconcile", "no_such_db", "--models", "fruit_models", server=couch_server, cwd=workdir
    )
    assert missing.code == 1, missing
    assert "error:" in missing.err
    assert "secret" not in missing.err + missing.out
    bad = run_cli("reconcile", "x", "--models", "no_such_module", server=couch_server, cwd=workdir)
    assert bad.code == 1, bad
    assert "no_such_module" in bad.err
    usage = run_cli("reconcile", "x", server=couch_server, cwd=workdir)
    assert usage.code == 2
    assert "--models" in usage.err


KEYRING = {"active": "k1", "keys": {"k1": "a2V5LW9uZS1rZXktb25lLWtleS1vbmUta2V5LW9uZSE"}}


@pytest.mark.parametrize("source", ["file", "env"])
async def test_reconcile_verifies_and_signs_with_a_keyring(
    couch_server: CouchServer, workdir: Path, db: tac.Database, source: str
) -> None:
    text = json.dumps(KEYRING)
    (workdir / "ring.json").write_text(text, encoding="utf-8")
    protection = tac.Protection.from_keyring(tac.KeyRing.from_json(text))
    sign = protection.signature.sign
    await _conflict(db, "f1", 2, 3, sign=sign)
    await _conflict(db, "f2", 1, 5, bad=True, sign=sign)  # edited after signing: tampered
    given = ("--keyring", "ring.json") if source == "file" else ()
    env = {"TOR_ASYNC_COUCHDB_KEYRING": text} if source == "env" else {}
    process = await _started(couch_server, workdir, db.name, *given, env=env)
    try:
        await eventually(lambda: _resolved(db, "f1"), seconds=60)
    finally:
        code, metrics, err = await _stop(process, signal.SIGTERM)
    assert code == 0, err
    assert (metrics["resolved"], metrics["quarantined"], metrics["failed"]) == (1, 1, 0)
    assert not await _resolved(db, "f2")  # left as it is
    assert "secret" not in err
    leaves = [item["ok"] for item in await db.get_open_revs("f1")]
    assert sorted(bool(leaf.get("_deleted")) for leaf in leaves) == [False, True]
    for leaf in leaves:  # the merged child and the tombstone, both signed
        protection.signature.verify(leaf)
    assert Fruit.from_doc(protection.signature.verify(await db.get_doc("f1"))).eaten.value == 5
