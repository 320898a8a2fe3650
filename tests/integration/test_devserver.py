"""The embedded server: start, the crash fixes, stop and clean-up, and its failures."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tor_async_couchdb import _devserver_install, devserver
from tor_async_couchdb.devserver import DevServer, DevServerError

pytestmark = pytest.mark.embedded_only


def call(
    server: DevServer, method: str, path: str, *, admin: bool = True, body: object = None
) -> tuple[int, dict[str, object]]:
    """One request with the standard library, so these tests depend on no client code."""
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    if admin:
        token = base64.b64encode(f"{server.user}:{server.password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        payload = None if body is None else json.dumps(body)
        connection.request(method, path, body=payload, headers=headers)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for every purpose here; /proc tells it apart.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


@contextlib.contextmanager
def listening(port: int) -> Iterator[socket.socket | None]:
    """Hold ``port`` on 127.0.0.1 if it is free (``None`` if someone else holds it already)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        yield None
        return
    sock.listen()
    try:
        yield sock
    finally:
        sock.close()


@pytest.fixture(scope="module")
def server() -> Iterator[DevServer]:
    """A server of this module's own: some tests here try to crash it."""
    with DevServer(in_memory=True) as started:
        yield started


def test_starts_on_a_free_port_when_5984_and_the_first_port_tried_are_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with listening(5984), listening(0) as taken:
        assert taken is not None
        taken_port = taken.getsockname()[1]
        offered: list[int] = []
        real_free_port = devserver._free_port

        def first_the_taken_one() -> int:
            port = taken_port if not offered else real_free_port()
            offered.append(port)
            return port

        monkeypatch.setattr(devserver, "_free_port", first_the_taken_one)
        with DevServer(in_memory=True) as started:
            assert started.port not in (5984, taken_port)
            assert offered[0] == taken_port
            assert len(offered) == 2
            assert call(started, "GET", "/_session")[0] == 200


def test_a_pinned_port_that_is_taken_fails_fast_with_a_clear_error() -> None:
    with listening(0) as taken:
        assert taken is not None
        port = taken.getsockname()[1]
        started_at = time.monotonic()
        with pytest.raises(DevServerError, match=f"port {port} is in use"):
            DevServer(port=port).start_sync()
        assert time.monotonic() - started_at < 15


def test_admin_requests_work(server: DevServer) -> None:
    assert call(server, "PUT", "/admin_works") == (201, {"ok": True})
    status, saved = call(server, "PUT", "/admin_works/doc1", body={"colour": "red"})
    assert status == 201
    assert saved["id"] == "doc1"
    status, doc = call(server, "GET", "/admin_works/doc1")
    assert (status, doc["colour"], doc["_rev"]) == (200, "red", saved["rev"])
    assert call(server, "DELETE", "/admin_works")[0] == 200


def test_admin_party_is_off_anonymous_create_gets_401_and_server_survives(
    server: DevServer,
) -> None:
    status, answer = call(server, "PUT", "/anonymous_db", admin=False)
    assert (status, answer["error"]) == (401, "unauthorized")
    time.sleep(0.2)  # the upstream bug killed the process just after answering
    assert server.running
    assert call(server, "GET", "/anonymous_db")[0] == 404
    assert call(server, "PUT", "/after_anonymous")[0] == 201


def test_failed_anonymous_delete_does_not_break_later_requests(server: DevServer) -> None:
    assert call(server, "PUT", "/delete_target")[0] == 201
    assert call(server, "DELETE", "/delete_target", admin=False)[0] == 401
    time.sleep(0.2)
    assert server.running
    # Upstream, every create/delete after a failed one was rejected for good.
    for name in ("later_one", "later_two"):
        assert call(server, "PUT", f"/{name}")[0] == 201
        assert call(server, "DELETE", f"/{name}")[0] == 200
    assert call(server, "DELETE", "/delete_target")[0] == 200


@pytest.mark.parametrize(
    "query", ["filter=_selector", "filter=missing/filter", "feed=longpoll&filter=missing/f"]
)
def test_failing_changes_feed_answers_an_error_and_server_survives(
    server: DevServer, query: str
) -> None:
    call(server, "PUT", "/changes_errors")
    status, answer = call(server, "GET", f"/changes_errors/_changes?{query}")
    assert status >= 400
    assert "error" in answer
    time.sleep(0.2)
    assert server.running
    assert call(server, "GET", "/changes_errors")[0] == 200


def test_stop_removes_the_process_and_every_file() -> None:
    server = DevServer()
    server.start_sync()
    pid, workdir = server.pid, server.workdir
    assert pid is not None
    assert workdir is not None
    assert workdir.is_dir()
    server.stop_sync()
    server.stop_sync()  # idempotent
    assert not process_exists(pid)
    assert not workdir.exists()


async def test_async_context_manager_starts_and_stops() -> None:
    async with DevServer(in_memory=True) as server:
        pid, workdir = server.pid, server.workdir
        assert call(server, "GET", "/_session")[0] == 200
    assert pid is not None
    assert workdir is not None
    assert not process_exists(pid)
    assert not workdir.exists()


def test_restart_keeps_port_and_data() -> None:
    with DevServer() as server:
        port = server.port
        call(server, "PUT", "/kept")
        call(server, "PUT", "/kept/doc", body={"n": 1})
        server.restart_sync()
        assert server.port == port
        assert call(server, "GET", "/kept/doc")[1]["n"] == 1


def test_nothing_remains_when_the_test_that_started_a_server_fails(tmp_path: Path) -> None:
    record = tmp_path / "server.json"
    (tmp_path / "test_fails.py").write_text(
        textwrap.dedent(f"""
        import json

        def test_fails(couch_server, extra_servers):
            extra = extra_servers()
            servers = [couch_server.embedded, extra.embedded]
            record = [{{"pid": s.pid, "workdir": str(s.workdir)}} for s in servers]
            open({str(record)!r}, "w").write(json.dumps(record))
            raise AssertionError("this test fails on purpose")
        """)
    )
    environment = {k: v for k, v in os.environ.items() if k != "COUCHDB_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "this test fails on purpose" in result.stdout
    started = json.loads(record.read_text())
    assert len(started) == 2
    for server in started:
        assert not process_exists(server["pid"])
        assert not Path(server["workdir"]).exists()


def test_cli_prints_url_and_credentials_and_stops_cleanly_on_sigterm() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "tor_async_couchdb", "devserver", "--in-memory"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            lines = [process.stdout.readline() for _ in range(4)]
            url = lines[0].split()[-1]
            password = lines[2].split()[-1]
            assert url.startswith("http://127.0.0.1:")
            host_port = url.removeprefix("http://")
            assert lines[3].strip() == f"COUCHDB_URL=http://admin:{password}@{host_port}"
            server = DevServer(password=password)
            server._port = int(host_port.rsplit(":", 1)[1])
            _, session = call(server, "GET", "/_session")
            assert session["userCtx"] == {"name": "admin", "roles": ["_admin"]}
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0
            with pytest.raises(ConnectionRefusedError):
                call(server, "GET", "/")
        finally:
            if process.poll() is None:
                process.kill()


@pytest.mark.parametrize(
    ("arguments", "named"),
    [(["--port", "99999"], "Invalid value for '--port'"), (["--port", "0"], "'--port'")],
)
def test_cli_bad_option_is_an_error_message_not_a_stack_trace(
    arguments: list[str], named: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tor_async_couchdb", "devserver", *arguments],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert named in result.stderr
    assert "Traceback" not in result.stderr
    assert "node:" not in result.stderr


class TestStartFailures:
    """Each failure gives an error that says what happened, within a bounded time."""

    def test_node_missing(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.setenv("PATH", str(tmp_path))
        with pytest.raises(DevServerError, match=r"Node\.js was not found"):
            DevServer().start_sync()

    def test_packages_not_installed(self, tmp_path: Path) -> None:
        with pytest.raises(DevServerError, match=r"not installed.*devserver install"):
            DevServer(server_dir=tmp_path).start_sync()

    def test_fixes_not_applied(self, tmp_path: Path) -> None:
        fake = fake_installation(tmp_path, "process.exit(0)", patched=False)
        with pytest.raises(DevServerError, match="crash fixes are missing"):
            DevServer(server_dir=fake).start_sync()

    def test_server_dies_at_start_up(self, tmp_path: Path) -> None:
        fake = fake_installation(tmp_path, "console.error('boom: bad config'); process.exit(3)")
        server = DevServer(server_dir=fake)
        with pytest.raises(DevServerError, match=r"exited at start-up \(code 3\)(.|\n)*boom"):
            server.start_sync()
        assert not server.running
        assert server.workdir is None

    def test_server_never_answers(self, tmp_path: Path) -> None:
        fake = fake_installation(tmp_path, "setInterval(function () {}, 1000);")
        server = DevServer(server_dir=fake, start_timeout=1.5)
        started_at = time.monotonic()
        with pytest.raises(DevServerError, match=r"did not answer .* within 2 s"):
            server.start_sync()
        assert time.monotonic() - started_at < 10
        assert not server.running
        assert server.workdir is None


def fake_installation(root: Path, script: str, *, patched: bool = True) -> Path:
    """A server folder whose 'pouchdb-server' is the given Node script."""
    binary = root / "node_modules" / "pouchdb-server" / "bin" / "pouchdb-server"
    for name in _devserver_install.PATCHED_FILES:
        path = root / "node_modules" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("// tor-async-couchdb fix\n" if patched else "// upstream\n")
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_text(script)
    return root


def test_folders_of_runs_killed_outright_are_swept_at_the_next_start(tmp_path: Path) -> None:
    script = tmp_path / "killed.py"
    script.write_text(
        textwrap.dedent("""
        import os, sys
        from tor_async_couchdb.devserver import DevServer
        server = DevServer(in_memory=True)
        server.start_sync()
        print(server.workdir, server.pid, flush=True)
        os.kill(os.getpid(), 9)  # no clean-up can run
        """)
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    workdir, pid = result.stdout.split()
    assert result.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 5
    while process_exists(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_exists(int(pid))  # the kernel ended the orphaned server
    assert Path(workdir).exists()
    with DevServer(in_memory=True) as server:
        assert server.workdir is not None
        assert server.workdir.exists()
        assert not Path(workdir).exists()
