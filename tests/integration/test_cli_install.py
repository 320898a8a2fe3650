"""``install``, ``status`` and ``delete-database`` through the installed console script."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import tor_async_couchdb as tac
from conftest import unique_db_name
from support.cli import Result, run_cli, run_cli_async
from tor_async_couchdb.testing import CouchServer

MODELS = """
from typing import Annotated

import tor_async_couchdb as tac


class Fruit(tac.Model, type_name="fruit", version="1.0"):
    fruit_id: Annotated[str, tac.Indexed()]
    color: Annotated[str, tac.Indexed()]
"""

COLOR_VIEW = "function (doc) { if (doc.color) emit(doc.color, null); }"
COLOR_AND_N_VIEW = "function (doc) { if (doc.color) emit([doc.color, doc.n], null); }"


def write_design(folder: Path, name: str, map_function: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"language": "javascript", "views": {name: {"map": map_function}}}
    (folder / f"{name}.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A service checkout: a models module, a folder of design documents, one of seeds."""
    (tmp_path / "fruit_models.py").write_text(MODELS, encoding="utf-8")
    write_design(tmp_path / "design", "by_color", COLOR_VIEW)
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    colors = [{"_id": f"color-{c}", "type": "color_v1.0", "name": c} for c in ("red", "green")]
    (seeds / "colors.json").write_text(json.dumps(colors), encoding="utf-8")
    (seeds / "settings.json").write_text('{"_id": "settings", "currency": "EUR"}\n')
    return tmp_path


@pytest.fixture
async def dbname(couch: tac.CouchDB) -> AsyncIterator[str]:
    """A database name no one uses; the database is deleted after the test."""
    name = unique_db_name("cli")
    try:
        yield name
    finally:
        await couch.database(name).delete_database(missing_ok=True)


SOURCES = ("--models", "fruit_models", "--design-dir", "design", "--seed-dir", "seeds")
MODEL_DESIGNS = ["_design/fruit_all", "_design/fruit_by_color", "_design/fruit_by_fruit_id"]


def install(server: CouchServer, cwd: Path, db: str, *extra: str) -> Result:
    return run_cli("install", db, *SOURCES, "--json", *extra, server=server, cwd=cwd)


async def all_ids(db: tac.Database) -> list[str]:
    return [row["id"] async for row in db.all_docs()]


async def revs(db: tac.Database) -> dict[str, str]:
    return {row["id"]: row["value"]["rev"] async for row in db.all_docs()}


async def test_install_creates_the_database_and_everything_in_it(
    couch: tac.CouchDB, couch_server: CouchServer, workdir: Path, dbname: str
) -> None:
    result = install(couch_server, workdir, dbname, "--member-role", "fruit_app")
    assert result.code == 0, result
    report = result.json()
    assert report["counts"] == {"created": 8, "updated": 1, "unchanged": 0}
    db = couch.database(dbname)
    assert await all_ids(db) == sorted(
        [*MODEL_DESIGNS, "_design/by_color", "color-green", "color-red", "settings"]
    )
    assert (await db.security())["members"]["roles"] == ["fruit_app"]
    assert (await db.get_doc("settings"))["currency"] == "EUR"
    # New design documents took the warm-up path too: staged, queried, swapped.
    assert sorted(w["design_id"] for w in report["warm_ups"]) == sorted(
        [*MODEL_DESIGNS, "_design/by_color"]
    )
    await db.put_doc({"_id": "f1", "type": "fruit_v1.0", "fruit_id": "f1", "color": "red"})
    rows = [row async for row in db.view("by_color", "by_color", key="red")]
    assert [row["id"] for row in rows] == ["f1"]


async def test_install_again_changes_nothing(
    couch: tac.CouchDB, couch_server: CouchServer, workdir: Path, dbname: str
) -> None:
    assert install(couch_server, workdir, dbname).code == 0
    before = await revs(couch.database(dbname))
    again = install(couch_server, workdir, dbname)
    assert again.code == 0, again
    assert again.json()["counts"] == {"created": 0, "updated": 0, "unchanged": 8}
    assert again.json()["warm_ups"] == []
    assert await revs(couch.database(dbname)) == before


async def test_dry_run_writes_nothing(
    couch: tac.CouchDB, couch_server: CouchServer, workdir: Path, dbname: str
) -> None:
    fresh = install(couch_server, workdir, dbname, "--dry-run")
    assert fresh.code == 0, fresh
    assert fresh.json()["dry_run"] is True
    assert fresh.json()["counts"]["created"] == 8
    assert not await couch.database(dbname).exists()

    assert install(couch_server, workdir, dbname).code == 0
    before = await revs(couch.database(dbname))
    write_design(workdir / "design", "by_color", COLOR_AND_N_VIEW)
    plan = install(couch_server, workdir, dbname, "--dry-run")
    assert plan.code == 0, plan
    changed = [i for i in plan.json()["items"] if i["action"] != "unchanged"]
    assert changed == [{"kind": "design", "id": "_design/by_color", "action": "updated"}]
    assert await revs(couch.database(dbname)) == before

    human = run_cli("install", dbname, *SOURCES, "--dry-run", server=couch_server, cwd=workdir)
    assert "nothing was written" in human.out
    assert "updated    design    _design/by_color" in human.out


async def test_seed_documents_are_loaded_once(
    couch: tac.CouchDB, couch_server: CouchServer, workdir: Path, dbname: str
) -> None:
    assert install(couch_server, workdir, dbname).code == 0
    db = couch.database(dbname)
    settings = await db.get_doc("settings")
    # The service changes a seed and deletes another: a later install leaves both alone.
    await db.put_doc({**settings, "currency": "CHF"})
    green = await db.get_doc("color-green")
    await db.delete_doc("color-green", green["_rev"])
    again = install(couch_server, workdir, dbname)
    assert again.code == 0, again
    seeds = [i for i in again.json()["items"] if i["kind"] == "seed"]
    assert {i["action"] for i in seeds} == {"unchanged"}
    assert (await db.get_doc("settings"))["currency"] == "CHF"
    with pytest.raises(tac.NotFound):
        await db.get_doc("color-green")
    info = await db.info()
    assert info["doc_count"] == len(MODEL_DESIGNS) + 1 + 2  # designs, color-red, settings


async def test_two_installs_at_the_same_moment(
    couch: tac.CouchDB, couch_server: CouchServer, workdir: Path, dbname: str
) -> None:
    args = ("install", dbname, *SOURCES, "--json")
    first, second = await asyncio.gather(
        run_cli_async(*args, server=couch_server, cwd=workdir),
        run_cli_async(*args, server=couch_server, cwd=workdir),
    )
    assert first.code == 0, first
    assert second.code == 0, second
    db = couch.database(dbname)
    # Each document once, no temporary design document left behind.
    assert await all_ids(db) == sorted(
        [*MODEL_DESIGNS, "_design/by_color", "color-green", "color-red", "settings"]
    )
    assert install(couch_server, workdir, dbname).json()["counts"]["unchanged"] == 8


async def _read_in_a_loop(db: tac.Database, stop: asyncio.Event) -> dict[str, Any]:
    """Query the old view until told to stop; every error and the slowest answer are kept."""
    errors: list[str] = []
    queries, slowest, began = 0, 0.0, time.monotonic()
    while not stop.is_set():
        started = time.monotonic()
        try:
            async with asyncio.timeout(10):  # a stale-index wait would show here
                rows = [row async for row in db.view("by_color", "by_color", limit=5)]
            assert len(rows) == 5
        except (tac.CouchError, TimeoutError, AssertionError) as error:
            errors.append(f"at {started - began:.1f} s: {error!r}")
        queries += 1
        slowest = max(slowest, time.monotonic() - started)
        await asyncio.sleep(0.05)
    return {"errors": errors, "queries": queries, "slowest": slowest}


@pytest.mark.slow
async def test_a_changed_view_is_upgraded_while_a_reader_queries_the_old_one(
    couch_server: CouchServer, workdir: Path, dbname: str
) -> None:
    timeouts = tac.Timeouts(read=300)
    async with (
        tac.CouchDB(couch_server.url, auth=couch_server.auth, timeouts=timeouts) as couch,
        tac.CouchDB(couch_server.url, auth=couch_server.auth) as reader_couch,
    ):
        assert install(couch_server, workdir, dbname).code == 0
        db = couch.database(dbname)
        for start in range(0, 20_000, 2_000):
            batch = [
                {"_id": f"f{n:05}", "type": "fruit_v1.0", "color": ("red", "green")[n % 2], "n": n}
                for n in range(start, start + 2_000)
            ]
            assert all(result.ok for result in await db.bulk_docs(batch))
        async for _ in db.view("by_color", "by_color", limit=1):  # the old index, up to date
            break

        write_design(workdir / "design", "by_color", COLOR_AND_N_VIEW)
        stop = asyncio.Event()
        reader = asyncio.create_task(_read_in_a_loop(reader_couch.database(dbname), stop))
        try:
            await asyncio.sleep(0.5)
            upgrade = await run_cli_async(
                "install",
                dbname,
                *SOURCES,
                "--json",
                "--log-level",
                "info",
                server=couch_server,
                cwd=workdir,
            )
        finally:
            stop.set()
            reading = await reader
        assert upgrade.code == 0, upgrade
        report = upgrade.json()
        assert [w["design_id"] for w in report["warm_ups"]] == ["_design/by_color"]
        assert report["warm_ups"][0]["progress_from"] in ("view", "active_tasks")
        assert report["view_cleanup"] is not couch_server.is_embedded
        assert reading["errors"] == [], upgrade.err
        assert reading["queries"] > 5
        # The swapped-in view answers from the index built before the swap: no rebuild wait.
        started = time.monotonic()
        rows = [r async for r in db.view("by_color", "by_color", startkey=["red"], limit=3)]
        assert time.monotonic() - started < 5
        assert [r["key"] for r in rows] == [["red", 0], ["red", 2], ["red", 4]]
        assert [d async for d in tac_design_ids(db)] == sorted([*MODEL_DESIGNS, "_design/by_color"])


async def tac_design_ids(db: tac.Database) -> AsyncIterator[str]:
    async for row in db.all_docs(startkey="_design/", endkey="_design0"):
        yield row["id"]


async def test_status_says_what_is_current_what_differs_and_what_is_extra(
    couch: tac.CouchDB, couch_server: CouchServer, workdir: Path, dbname: str
) -> None:
    missing = run_cli("status", dbname, "--json", server=couch_server, cwd=workdir)
    assert missing.code == 0, missing
    assert missing.json() == {"database": dbname, "exists": False, "documents": []}
    assert install(couch_server, workdir, dbname).code == 0
    write_design(workdir / "design", "by_color", COLOR_AND_N_VIEW)
    result = run_cli(
        "status", dbname, "--design-dir", "design", "--json", server=couch_server, cwd=workdir
    )
    assert result.code == 0, result
    states = {entry["id"]: entry["state"] for entry in result.json()["documents"]}
    assert states == {"_design/by_color": "differs"} | dict.fromkeys(MODEL_DESIGNS, "extra")


async def test_delete_database_asks_or_takes_yes(
    couch: tac.CouchDB, couch_server: CouchServer, workdir: Path, dbname: str
) -> None:
    await couch.database(dbname).create()
    unconfirmed = run_cli("delete-database", dbname, server=couch_server, cwd=workdir)
    assert unconfirmed.code == 2, unconfirmed
    assert "--yes" in unconfirmed.err
    assert await couch.database(dbname).exists()
    deleted = run_cli("delete-database", dbname, "--yes", server=couch_server, cwd=workdir)
    assert deleted.code == 0, deleted
    assert not await couch.database(dbname).exists()
    again = run_cli("delete-database", dbname, "--yes", server=couch_server, cwd=workdir)
    assert again.code == 1
    assert "does not exist" in again.out
    tolerant = ("delete-database", dbname, "--yes", "--missing-ok")
    assert run_cli(*tolerant, server=couch_server, cwd=workdir).code == 0


async def test_design_documents_from_a_package_s_resources(
    couch: tac.CouchDB, couch_server: CouchServer, workdir: Path, dbname: str
) -> None:
    package = workdir / "fruitservice"
    write_design(package / "couchdb" / "design", "by_color", COLOR_VIEW)
    (package / "__init__.py").write_text("")
    (package / "couchdb" / "seeds").mkdir()
    (package / "couchdb" / "seeds" / "one.json").write_text('{"_id": "one"}')
    result = run_cli(
        "install",
        dbname,
        "--design-package",
        "fruitservice:couchdb/design",
        "--seed-package",
        "fruitservice:couchdb/seeds",
        "--json",
        server=couch_server,
        cwd=workdir,
        env=None,
    )
    assert result.code == 0, result
    assert await all_ids(couch.database(dbname)) == ["_design/by_color", "one"]


async def test_a_map_function_that_does_not_compile_leaves_the_old_view_answering(
    couch: tac.CouchDB, couch_server: CouchServer, workdir: Path, dbname: str
) -> None:
    if couch_server.is_embedded:
        pytest.skip("pouchdb-server accepts and runs any map function; run with COUCHDB_URL")
    assert install(couch_server, workdir, dbname).code == 0
    db = couch.database(dbname)
    await db.put_doc({"_id": "f1", "type": "fruit_v1.0", "color": "red"})
    before = await db.get_doc("_design/by_color")
    write_design(workdir / "design", "by_color", "function (doc) { emit(doc.color, ")
    result = run_cli("install", dbname, *SOURCES, server=couch_server, cwd=workdir)
    assert result.code == 1, result
    assert "_design/by_color" in result.err
    assert "Traceback" not in result.err
    assert await db.get_doc("_design/by_color") == before
    rows = [row async for row in db.view("by_color", "by_color", key="red")]
    assert [row["id"] for row in rows] == ["f1"]
    assert [d async for d in tac_design_ids(db)] == sorted([*MODEL_DESIGNS, "_design/by_color"])


async def test_with_a_signing_key_ring_the_write_guard_is_installed_and_seeds_are_signed(
    couch: tac.CouchDB, couch_server: CouchServer, workdir: Path, dbname: str
) -> None:
    secret = tac.KeyRing.generate_secret()
    ring = {"active": "k1", "keys": {"k1": secret}}
    (workdir / "keyring.json").write_text(json.dumps(ring), encoding="utf-8")
    result = install(couch_server, workdir, dbname, "--signing-keyring", "keyring.json")
    assert result.code == 0, result
    assert secret not in result.out + result.err  # never printed
    db = couch.database(dbname)
    guard = await db.get_doc(tac.validate_doc_update_design()["_id"])
    assert "validate_doc_update" in guard
    signature = tac.Protection.from_keyring(tac.KeyRing.from_mapping(ring)).signature
    for seed_id in ("color-red", "color-green", "settings"):
        assert signature.verify(await db.get_doc(seed_id))["_id"] == seed_id
    again = install(couch_server, workdir, dbname, "--signing-keyring", "keyring.json")
    assert again.code == 0, again
    assert again.json()["counts"]["created"] == 0
