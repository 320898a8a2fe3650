"""The code in the README and docs really runs: every ``python`` block that calls
``asyncio.run`` is extracted and run as a script (it starts its own embedded server)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def runnable_blocks() -> list[tuple[str, str]]:
    blocks = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for number, code in enumerate(_BLOCK.findall(path.read_text(encoding="utf-8"))):
            if "asyncio.run(" in code:
                blocks.append((f"{path.name}#{number}", code))
    return blocks


@pytest.mark.embedded_only
@pytest.mark.parametrize(("where", "code"), runnable_blocks(), ids=lambda v: v if "#" in v else "")
def test_documented_example_runs(where: str, code: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{where} failed:\n{result.stdout}\n{result.stderr}"
