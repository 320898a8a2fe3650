"""docs/models.md stays true: its example program runs against the suite's server."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import tor_async_couchdb as tac

if TYPE_CHECKING:
    from tor_async_couchdb.testing import CouchServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "models.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)


async def test_the_models_guide_example_runs(
    couch_server: CouchServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) == 1, "docs/models.md should hold one complete example"
    # A real module, as pydantic looks the models' names up in sys.modules[__module__].
    module = types.ModuleType("models_guide")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(blocks[0], str(DOC), "exec"), module.__dict__)
    main: Any = module.__dict__["main"]
    await main(couch_server.url, couch_server.auth, f"guide_{tac.new_id()}")
