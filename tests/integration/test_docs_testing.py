"""The service tests that docs/testing.md shows really run: its ``# pyproject.toml``,
``# conftest.py`` and ``# test_*.py`` blocks are written to a folder and run by pytest, with the
plugin loaded by its entry point, as in a service's own repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
_FILE_BLOCK = re.compile(
    r"```(?:python|toml)\n# (pyproject\.toml|conftest\.py|test_\w+\.py)\n(.*?)```", re.DOTALL
)

pytestmark = pytest.mark.embedded_only


def test_the_documented_service_tests_pass(tmp_path: Path) -> None:
    blocks = _FILE_BLOCK.findall(DOC.read_text(encoding="utf-8"))
    assert [name for name, _ in blocks] == ["pyproject.toml", "conftest.py", "test_orders.py"]
    for name, code in blocks:
        (tmp_path / name).write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "COUCHDB_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "."],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
