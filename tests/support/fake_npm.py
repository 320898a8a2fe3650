"""A stand-in for ``npm ci --prefix DIR``, for fault tests of the installer.

It copies an installed ``node_modules`` (``FAKE_NPM_SOURCE``) into ``DIR`` instead of fetching
it, after ``FAKE_NPM_SLEEP`` seconds, and appends one line per run to ``FAKE_NPM_LOG``.
``FAKE_NPM_FAIL=1`` fails as npm does on a network error; ``FAKE_NPM_BREAK=NAME`` changes the
installed version of package NAME, as a tampered or mismatched install would.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    prefix = Path(argv[argv.index("--prefix") + 1])
    with open(os.environ["FAKE_NPM_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{os.getpid()} {' '.join(argv)}\n")
    time.sleep(float(os.environ.get("FAKE_NPM_SLEEP", "0")))
    if os.environ.get("FAKE_NPM_FAIL"):
        print("npm error code ECONNRESET\nnpm error network aborted", file=sys.stderr)
        return 1
    shutil.copytree(os.environ["FAKE_NPM_SOURCE"], prefix / "node_modules", symlinks=True)
    broken = os.environ.get("FAKE_NPM_BREAK")
    if broken:
        manifest = prefix / "node_modules" / broken / "package.json"
        data = json.loads(manifest.read_text(encoding="utf-8"))
        data["version"] = "0.0.0-tampered"
        manifest.write_text(json.dumps(data), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
