"""Where the embedded server is installed, and installing it once per user.

The wheel carries the server's ``package.json``, ``package-lock.json`` and crash-fix script as
``_devserver_files/`` (mapped from the repository's ``devserver/`` by ``setup.py``, so there is
one source of truth); a clone reads them from ``devserver/`` itself. :func:`install_server` runs
``npm ci`` from the shipped lock file into a temporary folder next to the target, applies the
fixes, checks every installed package against the lock file and only then renames the folder
into place, under a lock file, so that a half-done install is never used and two processes that
install at once do the work once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ._exceptions import CouchError, InvalidInputError

__all__ = [
    "DevServerError",
    "DevServerOptionError",
    "Installation",
    "clone_server_dir",
    "default_install_dir",
    "find_server_dir",
    "install_server",
    "locate",
    "shipped_dir",
]

DIR_ENV = "TAC_DEVSERVER_DIR"
SHIPPED_FILES = ("package.json", "package-lock.json", "patch-express-pouchdb.js")
WATCHDOG = "watchdog.js"
PATCH_MARKER = "tor-async-couchdb fix"
PATCHED_FILES = (
    "express-pouchdb/lib/routes/db.js",
    "express-pouchdb/lib/create-or-delete-dbs.js",
    "express-pouchdb/lib/utils.js",
    "express-pouchdb/lib/routes/changes.js",
    "pouchdb-server/lib/index.js",
)
INSTALL_HINT = (
    "install it with `tor-async-couchdb devserver install` (or, in a clone, ./scripts/setup)"
)
# The same stamp scripts/setup writes (sha256 of the three files, concatenated), so that a
# clone's devserver/ set up by the script counts as current here too.
_STAMP = Path("node_modules") / ".tac-installed"
_OURS = ".tac-install-dir"  # marks a folder install_server made, which it may replace
_NPM_TIMEOUT = 900.0
_LOCK_TIMEOUT = 1200.0  # a concurrent install may be a slow npm ci
_PROGRESS_EVERY = 3.0

Progress = Callable[[str], None]


class DevServerError(CouchError, RuntimeError):
    """The embedded server could not be found, installed, started or stopped; the message says
    what to do."""


class DevServerOptionError(DevServerError, InvalidInputError):
    """A :class:`~tor_async_couchdb.devserver.DevServer` option is invalid; the message names it.

    Both a :class:`DevServerError` (what the command line reports) and an
    :class:`~tor_async_couchdb.InvalidInputError` (also a builtin ``ValueError``).
    """


@dataclass(frozen=True, slots=True)
class Installation:
    """A usable server: the ``node`` binary and pouchdb-server's start script."""

    node: str
    script: Path


# -- where things are -------------------------------------------------------------------------


def _repository_root() -> Path:
    # src/tor_async_couchdb/_devserver_install.py -> the clone's root (if this runs from one).
    return Path(__file__).resolve().parents[2]


def clone_server_dir() -> Path | None:
    """The ``devserver/`` folder of the clone this package runs from, if it runs from one."""
    root = _repository_root()
    folder = root / "devserver"
    if (root / "pyproject.toml").is_file() and (folder / "package-lock.json").is_file():
        return folder
    return None


def shipped_dir() -> Path:
    """The folder holding the shipped ``package.json``, lock file, fix script and watchdog.

    Raises :class:`DevServerError` if neither the wheel's package data nor a clone has them.
    """
    packaged = Path(__file__).resolve().parent / "_devserver_files"
    if (packaged / "package-lock.json").is_file():
        return packaged
    clone = clone_server_dir()
    if clone is not None:
        return clone
    raise DevServerError(
        f"the embedded server's package files are missing (looked in {packaged}): "
        "reinstall tor-async-couchdb"
    )


def _digest(folder: Path) -> str:
    hasher = hashlib.sha256()
    for name in SHIPPED_FILES:
        hasher.update((folder / name).read_bytes())
    return hasher.hexdigest()


def _cache_root() -> Path:
    configured = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(configured) if configured and os.path.isabs(configured) else None
    return (base or Path.home() / ".cache") / "tor-async-couchdb"


def default_install_dir() -> Path:
    """``TAC_DEVSERVER_DIR`` if set, else ``$XDG_CACHE_HOME/tor-async-couchdb/devserver-HASH``.

    The hash is of the shipped files, so that a new lock file (or fix) installs beside the old
    one instead of running a server the fixes were not written for.
    """
    configured = os.environ.get(DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return _cache_root() / f"devserver-{_digest(shipped_dir())[:16]}"


def find_server_dir() -> Path:
    """The folder :class:`~tor_async_couchdb.devserver.DevServer` runs the server from.

    ``TAC_DEVSERVER_DIR`` if set; else the ``devserver/`` of the clone this package runs from,
    if it is installed there (``./scripts/setup``); else the per-user cache folder of
    :func:`default_install_dir` (installed at the first start if missing).
    """
    if os.environ.get(DIR_ENV):
        return default_install_dir()
    clone = clone_server_dir()
    if clone is not None and _server_script(clone).is_file():
        return clone
    return default_install_dir()


def _server_script(server_dir: Path) -> Path:
    return server_dir / "node_modules" / "pouchdb-server" / "bin" / "pouchdb-server"


def find_node() -> str:
    """The ``node`` binary on PATH. Raises :class:`DevServerError` if there is none."""
    node = shutil.which("node")
    if node is None:
        raise DevServerError(
            "Node.js was not found on PATH; the embedded server needs Node 18 or newer "
            "(Debian/Ubuntu: apt-get install nodejs npm)"
        )
    return node


def locate(server_dir: Path) -> Installation:
    """The server installed in ``server_dir``, checked for the crash fixes.

    Raises :class:`DevServerError` (saying how to install) if it is missing or unpatched.
    """
    node = find_node()
    script = _server_script(server_dir)
    if not script.is_file():
        raise DevServerError(f"pouchdb-server is not installed in {server_dir}: {INSTALL_HINT}")
    for name in PATCHED_FILES:
        path = server_dir / "node_modules" / name
        if not path.is_file() or PATCH_MARKER not in path.read_text(encoding="utf-8"):
            raise DevServerError(
                f"the crash fixes are missing from {path} (the post-install step did not run): "
                f"{INSTALL_HINT}"
            )
    return Installation(node=node, script=script)


def is_current(server_dir: Path) -> bool:
    """Whether ``server_dir`` holds a complete install of the shipped lock file and fixes."""
    try:
        stamp = (server_dir / _STAMP).read_text(encoding="ascii").strip()
    except OSError:
        return False
    return stamp == _digest(shipped_dir())


# -- installing -------------------------------------------------------------------------------


def install_server(target: Path | None = None, *, progress: Progress | None = None) -> Path:
    """Install pouchdb-server with its crash fixes into ``target`` once; return the folder.

    ``target`` defaults to :func:`default_install_dir` (``TAC_DEVSERVER_DIR``, else the per-user
    cache). A current install is left alone, so this is cheap to call every time. Otherwise it
    runs ``npm ci`` from the shipped lock file (10-60 s, from the npm registry or npm's
    cache), applies the fixes and checks each installed package's version against the lock
    file, in a temporary folder renamed into place at the end; a lock file makes a concurrent
    caller wait for this install instead of doing its own. ``progress`` receives one line per
    step. Raises :class:`DevServerError` (with npm's output when npm failed).
    """
    report = progress or (lambda _line: None)
    target = (target if target is not None else default_install_dir()).expanduser().absolute()
    if is_current(target):
        return target
    find_node()
    npm = shutil.which("npm")
    if npm is None:
        raise DevServerError("npm was not found on PATH (Debian/Ubuntu: apt-get install npm)")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DevServerError(f"cannot create {target.parent}: {error.strerror}") from error
    with _install_lock(target, report):
        if is_current(target):  # another process installed it while we waited
            report(f"the embedded server was installed in {target} meanwhile")
            return target
        _install_into(target, npm, report)
    return target


@contextlib.contextmanager
def _install_lock(target: Path, report: Progress) -> Iterator[None]:
    # The lock file stays behind on purpose: deleting it would let a third process lock a new
    # file while a second still holds the old one.
    path = target.parent / f".{target.name}.lock"
    try:
        handle = open(path, "a+b")  # noqa: SIM115 - closed by the with below
    except OSError as error:
        raise DevServerError(f"cannot create the lock file {path}: {error.strerror}") from error
    with handle:
        deadline = time.monotonic() + _LOCK_TIMEOUT
        waited = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DevServerError(
                        f"another process has held {path} for {_LOCK_TIMEOUT:.0f} s"
                    ) from None
                if not waited:
                    report(
                        f"waiting for another process installing the embedded server into {target}"
                    )
                    waited = True
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _sweep_leftovers(target: Path) -> None:
    """Delete the temporary folders of installs into ``target`` that were killed midway.

    Only the holder of the lock makes them, so under the lock any that exist are leftovers.
    """
    for pattern in (f".{target.name}.tmp-*", f".{target.name}.old-*"):
        for folder in target.parent.glob(pattern):
            shutil.rmtree(folder, ignore_errors=True)


def _install_into(target: Path, npm: str, report: Progress) -> None:
    _sweep_leftovers(target)
    shipped = shipped_dir()
    lock = json.loads((shipped / "package-lock.json").read_text(encoding="utf-8"))
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    started = time.monotonic()
    try:
        for name in SHIPPED_FILES:
            shutil.copyfile(shipped / name, staging / name)
        (staging / _OURS).write_text("made by tor_async_couchdb.devserver.install_server\n")
        version = lock["packages"]["node_modules/pouchdb-server"]["version"]
        report(
            f"installing the embedded server (pouchdb-server {version}) into {target}: "
            "npm ci, under a minute"
        )
        _run_npm_ci(npm, staging, lock, report)
        report("applying the crash fixes (patch-express-pouchdb.js)")
        _run_patch(staging)
        report("checking the installed packages against package-lock.json")
        _verify(staging, lock)
        locate(staging)
        (staging / _STAMP).write_text(_digest(shipped) + "\n", encoding="ascii")
        _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report(f"the embedded server is installed in {target} ({time.monotonic() - started:.0f} s)")


def _run_npm_ci(npm: str, staging: Path, lock: dict[str, Any], report: Progress) -> None:
    # --ignore-scripts: the lock file's install scripts are sqlite3's (with no prebuilt binary to
    # download it compiles SQLite from C++ source: two minutes and a compiler, for a --sqlite
    # mode the server is never run in), leveldown's (it picks the prebuilt binary it ships, as
    # it also does when loaded) and our fixes, which _run_patch applies.
    command = [npm, "ci", "--prefix", str(staging), "--ignore-scripts", "--no-audit"]
    command += ["--no-fund", "--loglevel=error"]
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            command, cwd=staging, stdin=subprocess.DEVNULL, stdout=output, stderr=output
        )
        try:
            _wait_reporting(process, staging, lock, report)
        finally:
            if process.poll() is None:  # timed out, or we were interrupted
                process.kill()
                process.wait()
        if process.returncode != 0:
            raise DevServerError(
                f"npm ci failed (exit code {process.returncode}) installing the embedded "
                f"server; its output:\n{_tail(output)}"
            )


def _wait_reporting(
    process: subprocess.Popen[bytes], staging: Path, lock: dict[str, Any], report: Progress
) -> None:
    # npm ci prints nothing useful at --loglevel=error; counting the packages unpacked so far
    # (npm creates their folders first, their package.json comes with the contents) gives a
    # progress line that means something.
    wanted = [key for key in lock["packages"] if key.startswith("node_modules/")]
    deadline = time.monotonic() + _NPM_TIMEOUT
    shown = -1
    while True:
        try:
            process.wait(timeout=_PROGRESS_EVERY)
            return
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() > deadline:
            raise DevServerError(f"npm ci did not finish within {_NPM_TIMEOUT:.0f} s")
        present = sum((staging / key / "package.json").is_file() for key in wanted)
        if present != shown:
            report(f"npm ci: {present} of {len(wanted)} packages")
            shown = present


def _run_patch(staging: Path) -> None:
    result = subprocess.run(
        [find_node(), str(staging / "patch-express-pouchdb.js")],
        cwd=staging,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise DevServerError(
            f"the crash fixes could not be applied:\n{result.stdout}{result.stderr}".rstrip()
        )


def _verify(staging: Path, lock: dict[str, Any]) -> None:
    """Every package of the lock file is installed, at the locked version."""
    for key, entry in lock["packages"].items():
        if not key.startswith("node_modules/") or entry.get("link"):
            continue
        manifest = staging / key / "package.json"
        if not manifest.is_file():
            if entry.get("optional"):
                continue  # skipped on this platform, as npm does
            raise DevServerError(f"npm ci left {key} out; the install is incomplete")
        version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
        if version != entry.get("version"):
            raise DevServerError(
                f"{key} is {version} after npm ci, but package-lock.json says {entry['version']}"
            )


def _move_into_place(staging: Path, target: Path) -> None:
    if target.exists() and any(target.iterdir()):
        if not (target / _OURS).is_file():
            raise DevServerError(
                f"{target} exists and is not an install made by install_server: remove it, or "
                f"point {DIR_ENV} at another folder (a clone's devserver/: run ./scripts/setup)"
            )
        # An older or broken install of ours: out of the way first, as rename cannot replace a
        # folder that is not empty, then deleted.
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        target.rename(old / "install")
        shutil.rmtree(old, ignore_errors=True)
    elif target.exists():
        target.rmdir()
    staging.rename(target)


def _tail(output: IO[bytes], lines: int = 30) -> str:
    output.seek(0)
    text = output.read().decode("utf-8", errors="replace").strip().splitlines()
    return "\n".join(text[-lines:]) or "(no output)"


def print_progress(line: str) -> None:
    """The default progress of a first start: one line on stderr, where a user sees it."""
    print(f"tor-async-couchdb: {line}", file=sys.stderr, flush=True)
