"""Installing the embedded server once per user: where, atomically, once for many processes.

npm is replaced by ``support/fake_npm.py``, which copies the clone's installed ``node_modules``
instead of fetching it (the real ``npm ci`` runs in ``test_wheel.py``); everything else (the
lock, the crash-fix script, the checks against the lock file, the rename, the start) is real.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tor_async_couchdb import _devserver_install
from tor_async_couchdb.devserver import DevServer, DevServerError, find_server_dir, install_server

pytestmark = pytest.mark.embedded_only

_SUPPORT = Path(__file__).resolve().parents[1] / "support"


@pytest.fixture
def fake_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the fake npm first on PATH; returns the file it logs its runs to."""
    clone = _devserver_install.clone_server_dir()
    if clone is None or not (clone / "node_modules" / "pouchdb-server").is_dir():
        pytest.skip("needs the clone's devserver/ installed (./scripts/setup)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(f'#!/bin/sh\nexec {sys.executable} {_SUPPORT / "fake_npm.py"} "$@"\n')
    npm.chmod(0o755)
    log = tmp_path / "npm-runs.txt"
    log.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_NPM_LOG", str(log))
    monkeypatch.setenv("FAKE_NPM_SOURCE", str((clone / "node_modules").resolve()))
    return log


def _runs(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").splitlines()


def _leftovers(parent: Path, target: Path) -> list[str]:
    """What install_server left beside its target, but for the lock file it keeps."""
    return sorted(
        p.name for p in parent.iterdir() if p != target and p.name != f".{target.name}.lock"
    )


def test_install_then_start_from_the_installed_folder(fake_npm: Path, tmp_path: Path) -> None:
    target = tmp_path / "cache" / "devserver-x"
    lines: list[str] = []
    assert install_server(target, progress=lines.append) == target
    assert _devserver_install.is_current(target)
    steps = [line.split()[0] for line in lines if not line.startswith("npm ci:")]
    assert steps == ["installing", "applying", "checking", "the"]
    assert str(target) in lines[0]
    assert _leftovers(target.parent, target) == []
    assert (target / "package-lock.json").read_bytes() == (
        _devserver_install.shipped_dir() / "package-lock.json"
    ).read_bytes()
    with DevServer(in_memory=True, server_dir=target) as server:
        assert server.running
    # Installed already: no second npm run, and fast.
    started = time.monotonic()
    assert install_server(target) == target
    assert time.monotonic() - started < 1
    assert len(_runs(fake_npm)) == 1


def test_two_processes_installing_at_once_run_npm_once(
    fake_npm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NPM_SLEEP", "2")
    target = tmp_path / "cache" / "devserver-x"
    code = (
        "import sys; from pathlib import Path; "
        "from tor_async_couchdb.devserver import install_server; "
        "print(install_server(Path(sys.argv[1]), progress=print))"
    )
    installers = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [installer.communicate(timeout=120)[0] for installer in installers]
    assert [installer.returncode for installer in installers] == [0, 0]
    assert [output.splitlines()[-1] for output in outputs] == [str(target)] * 2
    assert len(_runs(fake_npm)) == 1
    waiter = next(output for output in outputs if "waiting for another process" in output)
    assert "was installed in" in waiter
    assert _devserver_install.is_current(target)
    assert _leftovers(target.parent, target) == []


def test_a_failing_npm_leaves_nothing_behind_and_says_why(
    fake_npm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NPM_FAIL", "1")
    target = tmp_path / "cache" / "devserver-x"
    with pytest.raises(DevServerError, match=r"npm ci failed \(exit code 1\)(.|\n)*ECONNRESET"):
        install_server(target)
    assert not target.exists()
    assert _leftovers(target.parent, target) == []


def test_a_package_not_at_its_locked_version_is_refused(
    fake_npm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NPM_BREAK", "leveldown")
    target = tmp_path / "cache" / "devserver-x"
    with pytest.raises(
        DevServerError,
        match=r"node_modules/leveldown is 0\.0\.0-tampered .* package-lock\.json says 5\.6\.0",
    ):
        install_server(target)
    assert not target.exists()
    assert _leftovers(target.parent, target) == []


def test_a_folder_install_server_did_not_make_is_never_replaced(
    fake_npm: Path, tmp_path: Path
) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(DevServerError, match="not an install made by install_server"):
        install_server(target)
    assert (target / "notes.txt").read_text() == "keep me"
    assert _leftovers(target.parent, target) == ["bin", "npm-runs.txt"]


def test_a_stale_install_of_its_own_is_replaced(fake_npm: Path, tmp_path: Path) -> None:
    target = tmp_path / "cache" / "devserver-x"
    install_server(target)
    killed_midway = target.parent / ".devserver-x.tmp-abc123" / "node_modules"
    killed_midway.mkdir(parents=True)  # as an install killed by SIGKILL leaves it
    (target / "node_modules" / ".tac-installed").write_text("an older lock file\n")
    assert not _devserver_install.is_current(target)
    install_server(target)
    assert _devserver_install.is_current(target)
    assert len(_runs(fake_npm)) == 2
    assert _leftovers(target.parent, target) == []


def test_the_first_start_installs_into_tac_devserver_dir_with_progress(
    fake_npm: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FAKE_NPM_SLEEP", "3.5")  # long enough for one progress line
    monkeypatch.setenv("TAC_DEVSERVER_DIR", str(tmp_path / "server"))
    assert find_server_dir() == tmp_path / "server"
    with DevServer(in_memory=True) as server:  # the default progress: stderr
        assert server.running
    stderr = capfd.readouterr().err
    assert "tor-async-couchdb: installing the embedded server" in stderr
    assert re.search(r"tor-async-couchdb: npm ci: \d+ of \d+ packages", stderr)
    with DevServer(in_memory=True, progress=pytest.fail):  # installed: no second install
        pass
    assert len(_runs(fake_npm)) == 1


def test_without_a_clone_the_server_is_looked_for_in_the_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TAC_DEVSERVER_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    shipped = _devserver_install.shipped_dir()  # a clone's devserver/, in an editable install
    monkeypatch.setattr(_devserver_install, "shipped_dir", lambda: shipped)
    monkeypatch.setattr(_devserver_install, "clone_server_dir", lambda: None)
    found = find_server_dir()
    assert found.parent == tmp_path / "xdg" / "tor-async-couchdb"
    assert re.fullmatch(r"devserver-[0-9a-f]{16}", found.name)
    # A relative XDG_CACHE_HOME is invalid by the spec, and ignored.
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert find_server_dir().parent == tmp_path / "home" / ".cache" / "tor-async-couchdb"


def test_under_pytest_the_first_start_reports_on_the_terminal(
    fake_npm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytest captures the output of fixtures; a minute of silence would look like a hang.
    monkeypatch.setenv("TAC_DEVSERVER_DIR", str(tmp_path / "server"))
    monkeypatch.delenv("COUCHDB_URL", raising=False)
    tests = tmp_path / "service"
    tests.mkdir()
    (tests / "test_it.py").write_text("def test_it(couch_server):\n    pass\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        cwd=tests,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tor-async-couchdb: installing the embedded server" in result.stdout
    assert "tor-async-couchdb: the embedded server is installed in" in result.stdout
