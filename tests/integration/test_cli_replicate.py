"""``replicate`` and ``replication-status`` between two servers ("data centers")."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tor_async_couchdb as tac
from conftest import unique_db_name
from support.cli import cli_env, run_cli
from tor_async_couchdb.testing import CouchServer


async def _arrives(db: tac.Database, doc_id: str, within: float = 30.0) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while True:
            try:
                return await db.get_doc(doc_id)
            except tac.NotFound:
                await asyncio.sleep(0.2)


@pytest.mark.multi_server
async def test_replicate_both_ways_between_two_servers(
    extra_servers: Callable[..., CouchServer], tmp_path: Path
) -> None:
    east, west = extra_servers(in_memory=True), extra_servers(in_memory=True)
    env = cli_env(
        east,
        COUCHDB_REMOTE_URL=west.url,
        COUCHDB_REMOTE_USER=west.user,
        COUCHDB_REMOTE_PASSWORD=west.password,
    )
    async with (
        tac.CouchDB(east.url, auth=east.auth) as east_couch,
        tac.CouchDB(west.url, auth=west.auth) as west_couch,
    ):
        name = unique_db_name("orders")
        # A replication name of its own: a shared server may hold other replications.
        replication = f"dc_{tac.new_id()}"
        east_db, west_db = east_couch.database(name), west_couch.database(name)
        await east_db.create()
        docs: list[dict[str, Any]] = []
        try:
            await west_db.create()
            result = run_cli(
                "replicate",
                name,
                "--name",
                replication,
                "--json",
                server=east,
                cwd=tmp_path,
                env=env,
            )
            assert result.code == 0, result
            docs = result.json()
            assert [d["id"].rsplit("-", 1)[1] for d in docs] == ["push", "pull"]
            assert {d["action"] for d in docs} == {"created"}
            # Neither password is printed, nor stored in a URL.
            for server in (east, west):
                assert server.password not in result.out + result.err
            stored = await east_couch.database("_replicator").get_doc(docs[0]["id"])
            assert stored["target"]["url"] == f"{west.url}/{name}"
            assert west.password not in str(stored["target"]["url"])

            await east_db.put_doc({"_id": "order-east", "dc": "east"})
            await west_db.put_doc({"_id": "order-west", "dc": "west"})
            assert (await _arrives(west_db, "order-east"))["dc"] == "east"
            assert (await _arrives(east_db, "order-west"))["dc"] == "west"

            again = run_cli(
                "replicate",
                name,
                "--name",
                replication,
                "--json",
                server=east,
                cwd=tmp_path,
                env=env,
            )
            assert {d["action"] for d in again.json()} == {"unchanged"}

            status = run_cli(
                "replication-status",
                "--prefix",
                f"{replication}-",
                "--json",
                server=east,
                cwd=tmp_path,
                env=env,
            )
            assert status.code == 0, status
            states = {s["id"]: s for s in status.json()}
            assert set(states) == {d["id"] for d in docs}
            for state in states.values():
                assert state["failed"] is False
                assert state["state"] in ("triggered", "running")
            assert west.password not in status.out
            human = run_cli(
                "replication-status",
                "--prefix",
                f"{replication}-",
                server=east,
                cwd=tmp_path,
                env=env,
            )
            assert human.code == 0, human
            assert f"http://{west.url.removeprefix('http://')}/{name}" in human.out
        finally:
            for doc in docs:
                await east_couch.cancel_replication(doc["id"])
            for db in (east_db, west_db):
                await db.delete_database(missing_ok=True)


async def test_replication_status_of_a_failing_replication(
    couch: tac.CouchDB, couch_server: CouchServer, tmp_path: Path
) -> None:
    name = f"dead_{tac.new_id()}"
    db_name = unique_db_name("orders_dead")
    # The other data center is down for good: nothing listens on the remote URL.
    env = cli_env(couch_server, COUCHDB_REMOTE_URL="http://127.0.0.1:9", COUCHDB_REMOTE_USER="x")
    await couch.database(db_name).create(exists_ok=True)
    try:
        made = run_cli(
            "replicate", db_name, "--name", name, server=couch_server, cwd=tmp_path, env=env
        )
        assert made.code == 0, made
        assert (
            f"created   {name}-push: {couch_server.url}/{db_name} -> http://127.0.0.1:9/"
            in made.out
        )
        args = ("replication-status", "--prefix", f"{name}-", "--json")
        async with asyncio.timeout(60):
            while True:
                status = run_cli(*args, server=couch_server, cwd=tmp_path)
                listed = status.json()
                assert [s["id"] for s in listed] == [f"{name}-pull", f"{name}-push"]
                if couch_server.is_embedded or all(s["failed"] for s in listed):
                    break
                await asyncio.sleep(1)
        if couch_server.is_embedded:
            # pouchdb-server retries for ever and never reports the failure.
            assert status.code == 0, status
            assert {s["state"] for s in listed} == {"triggered"}
        else:
            # CouchDB 3's scheduler retries an unreachable end with a growing backoff: it
            # reports "crashing" (not yet "failed", which may take minutes, or never for a
            # continuous replication) with the last error; both count as failing.
            assert status.code == 1, status
            for state in listed:
                assert state["state"] in ("crashing", "failed", "error"), state
                assert state["error"], state
    finally:
        for suffix in ("push", "pull"):
            await couch.cancel_replication(f"{name}-{suffix}")
        await couch.database(db_name).delete_database(missing_ok=True)
