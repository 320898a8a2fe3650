"""Bad input gives a clear error, a non-zero exit and nothing half-installed; every command has
plain-text help; ``devserver`` validates its options."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import tor_async_couchdb as tac
from conftest import unique_db_name
from support.cli import cli_env, run_cli
from tor_async_couchdb.testing import CouchServer

GOOD_DESIGN = {"views": {"by_n": {"map": "function (doc) { emit(doc.n, null); }"}}}
COMMANDS = [
    "install",
    "status",
    "delete-database",
    "health",
    "metrics",
    "compact",
    "replicate",
    "replication-status",
    "reconcile",
    "devserver",
]


@pytest.fixture
async def dbname(couch: tac.CouchDB) -> AsyncIterator[str]:
    name = unique_db_name("bad")
    try:
        yield name
    finally:
        await couch.database(name).delete_database(missing_ok=True)


def folder_with(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for file_name, text in files.items():
        (folder / file_name).write_text(text, encoding="utf-8")
    return folder


def assert_clean_failure(result: object, code: int, *phrases: str) -> None:
    text = str(result)
    assert f"exit {code}\n" in text, text
    assert "Traceback" not in text, text
    for phrase in phrases:
        assert phrase in text, text


async def test_invalid_json_names_file_and_line_and_nothing_is_written(
    couch: tac.CouchDB, couch_server: CouchServer, tmp_path: Path, dbname: str
) -> None:
    good = json.dumps(GOOD_DESIGN)
    folder_with(
        tmp_path, "design", {"a_good.json": good, "b_bad.json": '{\n  "views": {\n    oops\n'}
    )
    result = run_cli("install", dbname, "--design-dir", "design", server=couch_server, cwd=tmp_path)
    assert_clean_failure(result, 1, "b_bad.json: line 3, column 5: invalid JSON")
    assert not await couch.database(dbname).exists()


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ('{"_id": "color-red", "_rev": "1-abc"}', "must not carry a '_rev'"),
        ('{"name": "red"}', "needs a stable '_id'"),
        ('[{"_id": "a"}, 3]', "every seed document must be a JSON object"),
        ('{"_id": "x", "n": NaN}', "NaN is not valid JSON"),
    ],
)
async def test_an_invalid_seed_stops_the_install_before_any_write(
    *,
    couch: tac.CouchDB,
    couch_server: CouchServer,
    tmp_path: Path,
    dbname: str,
    text: str,
    phrase: str,
) -> None:
    folder_with(tmp_path, "seeds", {"seed.json": text})
    folder_with(tmp_path, "design", {"d.json": json.dumps(GOOD_DESIGN)})
    result = run_cli(
        "install",
        dbname,
        "--design-dir",
        "design",
        "--seed-dir",
        "seeds",
        server=couch_server,
        cwd=tmp_path,
    )
    assert_clean_failure(result, 1, "seed.json", phrase)
    assert not await couch.database(dbname).exists()


async def test_a_design_document_without_a_map_function_is_refused(
    couch: tac.CouchDB, couch_server: CouchServer, tmp_path: Path, dbname: str
) -> None:
    folder_with(tmp_path, "design", {"d.json": '{"views": {"v": {"reduce": "_count"}}}'})
    result = run_cli("install", dbname, "--design-dir", "design", server=couch_server, cwd=tmp_path)
    assert_clean_failure(result, 1, "d.json: view 'v' needs a 'map' function")
    assert not await couch.database(dbname).exists()


async def test_a_models_module_that_does_not_import(
    couch: tac.CouchDB, couch_server: CouchServer, tmp_path: Path, dbname: str
) -> None:
    (tmp_path / "broken_models.py").write_text("import tor_async_couchdb as tac\n1 / 0\n")
    result = run_cli(
        "install", dbname, "--models", "broken_models", server=couch_server, cwd=tmp_path
    )
    assert_clean_failure(
        result, 1, "cannot import models module 'broken_models'", "ZeroDivisionError"
    )
    missing = run_cli(
        "install", dbname, "--models", "no_such_mod", server=couch_server, cwd=tmp_path
    )
    assert_clean_failure(missing, 1, "No module named 'no_such_mod'")
    assert not await couch.database(dbname).exists()


def test_a_database_name_couchdb_rejects_is_a_usage_error(
    couch_server: CouchServer, tmp_path: Path
) -> None:
    for command in ("install", "health", "metrics", "compact", "status"):
        result = run_cli(command, "Bad_Name", server=couch_server, cwd=tmp_path)
        assert_clean_failure(result, 2, "invalid database name 'Bad_Name'")


def test_an_unreachable_server(couch_server: CouchServer, tmp_path: Path) -> None:
    env = cli_env(couch_server, COUCHDB_URL="http://127.0.0.1:9")
    result = run_cli("install", "fruit", server=couch_server, cwd=tmp_path, env=env)
    assert_clean_failure(result, 1, "error: cannot connect", "http://127.0.0.1:9/fruit")
    metrics = run_cli("metrics", "fruit", server=couch_server, cwd=tmp_path, env=env)
    assert_clean_failure(metrics, 1, "cannot connect")


async def test_wrong_credentials_fail_the_install_and_are_never_echoed(
    couch: tac.CouchDB, couch_server: CouchServer, tmp_path: Path, dbname: str
) -> None:
    env = cli_env(couch_server, COUCHDB_PASSWORD="wrong-secret-1234")
    result = run_cli("install", dbname, server=couch_server, cwd=tmp_path, env=env)
    assert_clean_failure(result, 1, "401")
    assert "wrong-secret-1234" not in str(result)
    url = f"http://{couch_server.user}:wrong-secret-5678@{couch_server.url.removeprefix('http://')}"
    env = cli_env(couch_server, COUCHDB_URL=url)
    del env["COUCHDB_USER"], env["COUCHDB_PASSWORD"]  # the URL's own credentials are used
    in_url = run_cli(
        "install", dbname, "--log-level", "debug", server=couch_server, cwd=tmp_path, env=env
    )
    assert_clean_failure(in_url, 1, "401")
    assert "wrong-secret-5678" not in str(in_url)
    assert not await couch.database(dbname).exists()


async def test_credentials_from_a_file(
    couch: tac.CouchDB, couch_server: CouchServer, tmp_path: Path, dbname: str
) -> None:
    secret = tmp_path / "couch.credentials"
    secret.write_text(f"{couch_server.user}:{couch_server.password}\n")
    env = cli_env(couch_server)
    del env["COUCHDB_USER"], env["COUCHDB_PASSWORD"]
    args = ("install", dbname, "--credentials-file", str(secret), "--log-level", "debug")
    result = run_cli(*args, server=couch_server, cwd=tmp_path, env=env)
    assert result.code == 0, result
    assert couch_server.password not in str(result)
    assert await couch.database(dbname).exists()
    secret.write_text("no colon here\n")
    bad = run_cli(*args, server=couch_server, cwd=tmp_path, env=env)
    assert_clean_failure(bad, 2, "must hold one line USER:PASSWORD")
    assert "no colon here" not in str(bad)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_is_plain_text(command: str | None, couch_server: CouchServer, tmp_path: Path) -> None:
    args = ["--help"] if command is None else [command, "--help"]
    result = run_cli(*args, server=couch_server, cwd=tmp_path)
    assert result.code == 0, result
    assert result.out.startswith("Usage: tor-async-couchdb")
    assert "`" not in result.out  # no raw reST or Markdown
    assert not re.search(r"[\u2500-\u257f]|\x1b\[", result.out)  # no box drawing, no colour
    if command is None:
        assert "Exit codes: 0 success" in result.out
        for name in COMMANDS:
            assert f"  {name} " in result.out


@pytest.mark.parametrize(
    "args",
    [
        ["devserver", "--port", "99999"],
        ["devserver", "--port", "http"],
        ["install"],
        ["compact", "fruit", "--threshold", "2"],
        ["no-such-command"],
    ],
)
def test_usage_errors_exit_2_without_a_traceback(
    args: list[str], couch_server: CouchServer, tmp_path: Path
) -> None:
    result = run_cli(*args, server=couch_server, cwd=tmp_path)
    assert_clean_failure(result, 2, "Usage: tor-async-couchdb", "Error:")


def test_python_dash_m_runs_the_same_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tor_async_couchdb", "devserver", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "0 is not in the range 1<=x<=65535" in done.stderr
