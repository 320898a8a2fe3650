"""Helpers for tests that run the sample's commands as a user would: their printed lines."""

from __future__ import annotations

import queue
import shlex
import subprocess
import threading
import time


def read_until_ready(process: subprocess.Popen[str], deadline: float) -> list[str]:
    """The lines the command printed up to (and with) its last one, "Ctrl-C stops...".

    A thread reads them: select() on a buffered pipe misses lines already in the buffer.
    """
    assert process.stdout is not None
    stdout = process.stdout
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    printed: list[str] = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=min(left, 1.0))
        except queue.Empty:
            if process.poll() is not None:
                break  # the command ended
            continue
        printed.append(line.rstrip("\n"))
        if line.startswith("Ctrl-C"):
            return printed
    raise AssertionError(f"not ready within the time limit; printed: {printed}")


def curl_lines(printed: list[str]) -> list[list[str]]:
    return [shlex.split(line) for line in printed if line.strip().startswith("curl ")]
