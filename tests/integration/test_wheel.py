"""A new user's first hour: the built wheel, installed into a fresh virtual environment outside
the repository, runs the README quickstart, installing the embedded server into a cache of its
own on the way (a real ``npm ci`` from the shipped lock file)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "node_modules", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
)

pytestmark = [pytest.mark.slow, pytest.mark.embedded_only]


_WHERE_AND_PLUGINS = """
from importlib.metadata import entry_points
import tor_async_couchdb
print(tor_async_couchdb.__file__)
print(*[plugin.value for plugin in entry_points(group="pytest11")])
"""


def _run(command: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _quickstart() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```python\n(.*?)```", readme, re.DOTALL)
    assert block is not None
    return block.group(1)


def _clean_environment(tmp_path: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("COUCHDB_URL", "TAC_DEVSERVER_DIR", "PYTHONPATH", "VIRTUAL_ENV")
    }
    # npm's own download cache (~/.npm) stays: a user's would too.
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    return env


def test_the_wheel_runs_the_readme_quickstart_in_a_fresh_venv(tmp_path: Path) -> None:
    assert not tmp_path.is_relative_to(ROOT)
    env = _clean_environment(tmp_path)
    # Build from a copy of the sources, so that the build leaves nothing in the repository.
    sources = tmp_path / "sources"
    shutil.copytree(ROOT, sources, ignore=_NOT_SOURCES)
    # A path, not a bare name: pip would take "sources" for a package on the index.
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", "dist"]
    pip_wheel.append(str(sources))
    _run(pip_wheel, cwd=tmp_path, env=env, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("tor_async_couchdb-*.whl")

    _run([sys.executable, "-m", "venv", "venv"], cwd=tmp_path, env=env, timeout=120)
    python = str(tmp_path / "venv" / "bin" / "python")
    _run([python, "-m", "pip", "install", "-q", str(wheel)], cwd=tmp_path, env=env, timeout=300)
    found = _run([python, "-c", _WHERE_AND_PLUGINS], cwd=tmp_path, env=env, timeout=60)
    where, plugins = found.splitlines()
    assert Path(where).is_relative_to(tmp_path / "venv")
    assert "tor_async_couchdb.testing" in plugins

    (tmp_path / "quickstart.py").write_text(_quickstart(), encoding="utf-8")
    output = _run([python, "-W", "error", "quickstart.py"], cwd=tmp_path, env=env, timeout=600)
    assert "tor-async-couchdb: installing the embedded server" in output
    assert "conflict on" in output
    (installed,) = (tmp_path / "cache" / "tor-async-couchdb").glob("devserver-*")
    shipped = installed / "package-lock.json"
    assert shipped.read_bytes() == (ROOT / "devserver" / "package-lock.json").read_bytes()
    assert (installed / "node_modules" / "pouchdb-server").is_dir()
