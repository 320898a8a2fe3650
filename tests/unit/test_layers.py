"""The layer contracts (``[tool.importlinter]`` in pyproject.toml) hold, and would catch a break.

Each test runs ``lint-imports`` on a copy of the package, as CI runs it on the real one: the copy
as it is keeps both contracts; a copy with a deliberate violation breaks the right one.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "tor_async_couchdb"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tmp_path: Path, violations: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` over a copy of the package with ``violations`` (module path: code)."""
    copy = tmp_path / "src" / "tor_async_couchdb"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for relative, code in violations.items():
        (copy / relative).write_text(code)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", "pyproject.toml", "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_package_keeps_its_contracts(tmp_path: Path) -> None:
    result = _lint(tmp_path, {})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "code"),
    [
        ("_couch/_violation.py", "from .._store import Database\n"),
        # A type-only import counts as much as a run-time one.
        (
            "_models/_violation.py",
            "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
            "    from .._store import Mapper\n",
        ),
        ("_transport/_violation.py", "from .._couch import Engine\n"),
    ],
)
def test_an_upward_import_breaks_the_layers(tmp_path: Path, module: str, code: str) -> None:
    result = _lint(tmp_path, {module: code})
    assert result.returncode == 1, result.stdout
    assert "Layers: each imports only from the layers below it BROKEN" in result.stdout
    assert "_violation" in result.stdout


def test_pydantic_in_the_raw_layer_breaks_the_forbidden_contract(tmp_path: Path) -> None:
    result = _lint(tmp_path, {"_couch/_violation.py": "import pydantic\n"})
    assert result.returncode == 1, result.stdout
    assert "never import pydantic BROKEN" in result.stdout


def test_no_class_is_over_600_lines() -> None:
    # Documents, paging and changes are separate ideas: a class that grows past this holds two.
    long = []
    for path in PACKAGE.rglob("*.py"):
        classes = [
            node
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.ClassDef)
        ]
        long += [
            f"{path.relative_to(PACKAGE)}:{node.name}"
            for node in classes
            if (node.end_lineno or 0) - node.lineno + 1 > 600
        ]
    assert long == []
