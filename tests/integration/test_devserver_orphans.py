"""No orphaned server: however the Python process that started it dies, node goes with it."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.embedded_only

_HOLDERS = {
    # The async form starts node from a worker thread, where PR_SET_PDEATHSIG cannot be armed:
    # only the watchdog ends it.
    "async with": """
        import asyncio
        from tor_async_couchdb.devserver import DevServer

        async def main() -> None:
            async with DevServer(in_memory=True):
                print("ready", flush=True)
                await asyncio.sleep(600)

        asyncio.run(main())
    """,
    "with": """
        import time
        from tor_async_couchdb.devserver import DevServer

        with DevServer(in_memory=True):
            print("ready", flush=True)
            time.sleep(600)
    """,
    "start_sync in a thread": """
        import threading, time
        from tor_async_couchdb.devserver import DevServer

        server = DevServer(in_memory=True)
        starter = threading.Thread(target=server.start_sync)
        starter.start()
        starter.join()  # the spawning thread is gone before Python is killed
        print("ready", flush=True)
        time.sleep(600)
    """,
    "command line": """
        import sys
        from tor_async_couchdb.__main__ import main

        sys.exit(main(["devserver", "--in-memory"]))
    """,
}


def _node_children(holder: psutil.Process) -> list[psutil.Process]:
    return [child for child in holder.children() if "node" in child.name()]


def _gone(process: psutil.Process) -> bool:
    try:
        return bool(process.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
@pytest.mark.parametrize("form", list(_HOLDERS))
def test_node_ends_when_the_python_process_holding_the_server_is_killed(
    form: str, how: signal.Signals, tmp_path: Path
) -> None:
    if how is signal.SIGTERM and form == "command line":
        pytest.skip("the command line stops cleanly on SIGTERM (tested in test_devserver)")
    script = tmp_path / "holder.py"
    script.write_text(textwrap.dedent(_HOLDERS[form]), encoding="utf-8")
    nodes: list[psutil.Process] = []
    with subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as holder:
        try:
            assert holder.stdout is not None
            first_line = holder.stdout.readline()
            assert first_line.startswith(("ready", "embedded CouchDB-compatible server"))
            nodes = _node_children(psutil.Process(holder.pid))
            assert len(nodes) == 1, nodes
            holder.send_signal(how)
            assert holder.wait(timeout=10) == -how
            deadline = time.monotonic() + 5
            while not _gone(nodes[0]) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _gone(nodes[0]), f"node {nodes[0].pid} outlived its Python process"
        finally:
            if holder.poll() is None:
                holder.kill()
            for node in nodes:  # only on failure: a failed test leaves no orphan either
                if not _gone(node):
                    node.kill()
