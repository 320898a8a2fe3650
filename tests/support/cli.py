"""Running the installed ``tor-async-couchdb`` console script against a test server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tor_async_couchdb.testing import CouchServer

SCRIPT = Path(sys.executable).with_name("tor-async-couchdb")


@dataclass(frozen=True)
class Result:
    """What one run printed and its exit code."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """stdout parsed as JSON (``--json`` runs print nothing else there)."""
        return json.loads(self.out)

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def cli_env(server: CouchServer, **extra: str) -> dict[str, str]:
    """The environment a run gets: the server's URL and admin credentials, as an operator
    would export them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUCHDB_")}
    env.update(COUCHDB_URL=server.url, COUCHDB_USER=server.user, COUCHDB_PASSWORD=server.password)
    env.update(extra)
    return env


def run_cli(
    *args: str, server: CouchServer, cwd: Path, env: dict[str, str] | None = None
) -> Result:
    """Run the console script and wait (at most 5 minutes)."""
    done = subprocess.run(
        [str(SCRIPT), *args],
        cwd=cwd,
        env=env if env is not None else cli_env(server),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return Result(done.returncode, done.stdout, done.stderr)


async def run_cli_async(
    *args: str, server: CouchServer, cwd: Path, env: dict[str, str] | None = None
) -> Result:
    """Run the console script without blocking the event loop (for runs side by side)."""
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        *args,
        cwd=cwd,
        env=env if env is not None else cli_env(server),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    except BaseException:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())
