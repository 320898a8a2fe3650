"""The pytest plugin as a service's own tests meet it: loaded by its entry point, with the
servers of ``COUCHDB_URL`` handed out and never stopped."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import tor_async_couchdb as tac
from tor_async_couchdb.devserver import DevServer
from tor_async_couchdb.testing import CouchServer, servers_from_env

pytestmark = pytest.mark.embedded_only  # it starts embedded servers to stand for external ones

_USES_THREE_SERVERS = """
    import json

    def test_servers(couch_server, extra_servers):
        second = extra_servers(in_memory=True)
        assert couch_server.is_external and second.is_external
        open(RECORD, "w").write(json.dumps([couch_server.url, second.url]))
        extra_servers()  # a third: more than COUCHDB_URL names
        raise AssertionError("not reached: the test is skipped")
"""


def _run_pytest(folder: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COUCHDB_URL"} | environment
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(folder)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def two_servers() -> Iterator[list[DevServer]]:
    """Two embedded servers standing for the external ones of a COUCHDB_URL."""
    with DevServer(in_memory=True) as first, DevServer(in_memory=True) as second:
        yield [first, second]


def test_couchdb_url_names_servers_that_are_handed_out_in_order_and_never_stopped(
    two_servers: list[DevServer], tmp_path: Path
) -> None:
    record = tmp_path / "record.json"
    code = textwrap.dedent(_USES_THREE_SERVERS).replace("RECORD", repr(str(record)))
    (tmp_path / "test_service.py").write_text(code, encoding="utf-8")
    urls = ",".join(server.url_with_credentials for server in two_servers)
    result = _run_pytest(tmp_path, COUCHDB_URL=f" {urls}, ")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 skipped" in output
    assert "needs more than 1 extra server(s); COUCHDB_URL names 2 server(s)" in output
    assert record.read_text() == f'["{two_servers[0].url}", "{two_servers[1].url}"]'
    for server in two_servers:  # the plugin did not stop what it did not start
        assert server.running
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            connection.request("GET", "/")
            assert connection.getresponse().status == 200
        finally:
            connection.close()


@pytest.mark.parametrize("conftest", ["", 'pytest_plugins = ["tor_async_couchdb.testing"]\n'])
def test_the_entry_point_loads_the_plugin_once(conftest: str, tmp_path: Path) -> None:
    # A conftest that still names the plugin (as the docs once said) must not load it twice.
    (tmp_path / "conftest.py").write_text(conftest, encoding="utf-8")
    (tmp_path / "test_embedded.py").write_text(
        textwrap.dedent("""
        def test_embedded(couch_server, request):
            manager = request.config.pluginmanager
            assert manager.has_plugin("tor_async_couchdb.testing")
            assert couch_server.is_embedded and not couch_server.is_external
        """),
        encoding="utf-8",
    )
    result = _run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_the_plugin_can_be_turned_off(tmp_path: Path) -> None:
    (tmp_path / "test_off.py").write_text("def test_off(couch_server):\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k != "COUCHDB_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:tor_async_couchdb.testing", "."],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "fixture 'couch_server' not found" in result.stdout


class TestServersFromEnv:
    def test_one_or_several_comma_separated(self) -> None:
        assert servers_from_env(None) == []
        assert servers_from_env("") == []
        first, second = servers_from_env(
            "http://admin:s%2Cecret@10.0.0.1:5984/ , https://ops:pw@couch.example.com"
        )
        assert first == CouchServer(url="http://10.0.0.1:5984", user="admin", password="s,ecret")
        assert second.url == "https://couch.example.com"
        assert second.auth == ("ops", "pw")
        assert first.is_external
        assert not first.is_embedded

    @pytest.mark.parametrize(
        ("value", "error"),
        [
            ("http://a:b@h:1,ftp://a:b@h", "must be an http"),
            ("http://a:b@h:1,http://h:2", "must carry admin credentials"),
        ],
    )
    def test_a_bad_url_among_them_is_a_typed_error(self, value: str, error: str) -> None:
        with pytest.raises(tac.InvalidInputError, match=error):
            servers_from_env(value)
