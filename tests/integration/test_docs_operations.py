"""The session in ``docs/operations.md`` really runs: its files are written out, each ``$``
command is run with the installed console script, and its output must match the transcript
(``...`` stands for anything; runs of spaces count as one; ``[exit N]`` is the exit code)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from support.cli import run_cli
from tor_async_couchdb.testing import CouchServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
_FILE = re.compile(r"File `([^`]+)`:\n\n```\w*\n(.*?)```", re.DOTALL)
_CONSOLE = re.compile(r"```console\n(.*?)```", re.DOTALL)
_EXIT = re.compile(r"\[exit (\d+)\]")


def steps(block: str) -> list[tuple[str, list[str]]]:
    """``(command, expected output lines)`` of each ``$`` line of a console block."""
    found: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            found.append((line[2:], []))
        else:
            found[-1][1].append(line)
    return found


def _line_pattern(line: str) -> str:
    if line.strip() == "...":
        return r"(?:[^\n]*\n)*"  # any number of lines
    words = [re.escape(word).replace(r"\.\.\.", "[^\n]*") for word in line.split()]
    return r"[ \t]*" + r"[ \t]+".join(words) + r"[ \t]*\n"


def matches(expected: list[str], actual: str) -> bool:
    """Whether ``actual`` is the expected lines (see the module docstring)."""
    pattern = "".join(_line_pattern(line) for line in expected)
    text = "".join(line + "\n" for line in actual.strip("\n").splitlines())
    return re.fullmatch(pattern, text) is not None


def _run_block(block: str, server: CouchServer, cwd: Path) -> None:
    for command, shown_lines in steps(block):
        args = shlex.split(command)
        assert args[0] == "tor-async-couchdb"
        code, expected = 0, shown_lines
        if shown_lines and (found := _EXIT.fullmatch(shown_lines[-1].strip())):
            code, expected = int(found.group(1)), shown_lines[:-1]
        result = run_cli(*args[1:], server=server, cwd=cwd)
        assert result.code == code, f"$ {command}\n{result}"
        shown = result.out + result.err
        assert matches(expected, shown), (
            f"$ {command}\nexpected:\n" + "\n".join(expected) + f"\n{result}"
        )


@pytest.mark.embedded_only
def test_the_documented_session_runs_as_shown(couch_server: CouchServer, tmp_path: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    for name, content in _FILE.findall(text):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    blocks = _CONSOLE.findall(text)
    assert len(blocks) == 2
    try:
        for block in blocks:
            _run_block(block, couch_server, tmp_path)
    finally:
        run_cli("delete-database", "fruit_store", "--yes", server=couch_server, cwd=tmp_path)


def test_the_matcher_is_strict_where_the_transcript_is_exact() -> None:
    assert matches(["ok  a ... b"], "ok a 12 s b\n")
    assert not matches(["ok a b"], "ok a b\nmore\n")
    assert matches(["{", "..."], '{\n  "x": 1\n}\n')
    assert matches(["a", "", "b"], "a\n\nb\n")
    assert not matches(["healthy"], "unhealthy\n")
