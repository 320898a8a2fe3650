"""The embedded CouchDB-compatible server, for development, tests and the demo.

It runs pouchdb-server 4.2.0 (Node.js) with the project's crash fixes applied, in a temporary
directory, bound to 127.0.0.1 on a free port, with an admin user so that "admin party" is off and
authentication works as on CouchDB 3::

    async with DevServer() as server:
        async with tac.CouchDB(server.url, auth=server.auth) as couch:
            ...

    with DevServer(in_memory=True) as server:   # the same from synchronous code
        print(server.url_with_credentials)

The server is installed once per user by :func:`install_server` (``npm ci`` from the lock file
shipped in the package), at the first start if need be; see :func:`find_server_dir` for where it
is looked for. However the Python process ends, even by SIGKILL, its servers end with it.

Production code points at Apache CouchDB 3.x, a cluster or Cloudant instead; ``docs/testing.md``
in the repository lists the differences between the two that a client meets.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

from ._devserver_install import (
    WATCHDOG,
    DevServerError,
    DevServerOptionError,
    Installation,
    clone_server_dir,
    find_server_dir,
    install_server,
    locate,
    print_progress,
    shipped_dir,
)

__all__ = [
    "DevServer",
    "DevServerError",
    "DevServerOptionError",
    "find_server_dir",
    "install_server",
]

_PORT_ATTEMPTS = 5
_WORKDIR_PREFIX = "tac-devserver-"
_OWNER_FILE = "owner.pid"
_MAX_PORT = 65535


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    return True


def _sweep_abandoned_workdirs() -> None:
    """Delete the folders of servers whose Python process died without stopping them.

    A process killed outright (SIGKILL, a CI time-out) cannot clean up; its servers end (their
    watchdog, and :func:`_death_signal_setter` where it holds) but their folders stay. The next
    start removes them, and only them: a folder whose owner still runs is left alone.
    """
    for folder in Path(tempfile.gettempdir()).glob(f"{_WORKDIR_PREFIX}*"):
        try:
            owner = int((folder / _OWNER_FILE).read_text(encoding="ascii"))
        except (OSError, ValueError):
            continue  # not ours to judge (or being created right now)
        if not _process_alive(owner):
            shutil.rmtree(folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _death_signal_setter() -> Callable[[], None] | None:
    """A pre-exec hook that makes the kernel end the server when its parent thread dies.

    A second line behind the watchdog (``watchdog.js``), which a process that forked without
    exec could keep waiting by holding the pipe. Linux only; the signal fires when the *thread*
    that spawned the child exits, so it is only armed when the main thread spawns; libc is
    loaded here, before the fork, as loading it in the child is unsafe.
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def arm() -> None:  # pragma: no cover - runs in the child between fork and exec
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return arm


def _check_options(
    *, port: int | None, user: str, password: str | None, start_timeout: float
) -> None:
    """Reject what would otherwise fail inside Node with a stack trace, naming the option."""
    if port is not None and (
        isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= _MAX_PORT
    ):
        raise DevServerOptionError(
            f"port must be an integer from 1 to {_MAX_PORT} (or None for a free one), got {port!r}"
        )
    if not isinstance(user, str) or not user or ":" in user:
        raise DevServerOptionError(
            f"user must be a non-empty string without ':' (basic auth), got {user!r}"
        )
    if password is not None and (not isinstance(password, str) or not password):
        raise DevServerOptionError("password must be a non-empty string (or None for a random one)")
    number = isinstance(start_timeout, int | float) and not isinstance(start_timeout, bool)
    if not number or not start_timeout > 0:
        raise DevServerOptionError(
            f"start_timeout must be a positive number of seconds, got {start_timeout!r}"
        )


class DevServer:
    """One embedded pouchdb-server process in a temporary directory.

    Keyword arguments: ``in_memory`` keeps databases in memory (files still go to the temporary
    directory); ``port`` pins a port (default: a free one, never 5984 by accident); ``user`` and
    ``password`` are the admin's (default password: random); ``start_timeout`` bounds the wait
    for the first answer; ``server_dir`` is an installed server to run as it is (default:
    :func:`find_server_dir`, installed at the first start if missing); ``progress`` receives
    the lines of that install (default: stderr).

    Raises :class:`DevServerOptionError` (an ``InvalidInputError``) for an invalid option.
    """

    def __init__(
        self,
        *,
        in_memory: bool = False,
        port: int | None = None,
        user: str = "admin",
        password: str | None = None,
        start_timeout: float = 30.0,
        server_dir: Path | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        _check_options(port=port, user=user, password=password, start_timeout=start_timeout)
        self.in_memory = in_memory
        self.user = user
        self.password = password if password is not None else secrets.token_urlsafe(16)
        self.start_timeout = start_timeout
        self.server_dir = server_dir
        self._progress = progress or print_progress
        self._requested_port = port
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None

    def __repr__(self) -> str:
        state = f"running at {self.url}" if self.running else "stopped"
        return f"<DevServer {state} user={self.user!r}>"

    # -- what callers read -------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the running server listens on."""
        if self._port is None:
            raise DevServerError("the server has not been started")
        return self._port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, without credentials."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url_with_credentials(self) -> str:
        """The URL with the admin's credentials (percent-encoded), as ``COUCHDB_URL`` takes it."""
        user, password = quote(self.user, safe=""), quote(self.password, safe="")
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    @property
    def auth(self) -> tuple[str, str]:
        """The admin's ``(user, password)``."""
        return (self.user, self.password)

    @property
    def pid(self) -> int | None:
        """The server process's id while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def workdir(self) -> Path | None:
        """The temporary directory holding the server's files while it runs."""
        return self._workdir

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    # -- starting ----------------------------------------------------------------------------

    def start_sync(self) -> None:
        """Start the server and wait until it answers. Raises :class:`DevServerError`."""
        if self._process is not None:
            raise DevServerError("the server is already running")
        installation = self._installation()
        _sweep_abandoned_workdirs()
        self._workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX))
        (self._workdir / _OWNER_FILE).write_text(str(os.getpid()), encoding="ascii")
        try:
            self._start_on_some_port(installation)
        except BaseException:
            self.stop_sync()
            raise

    async def start(self) -> None:
        """Start the server and wait until it answers, without blocking the event loop."""
        # Start-up is mostly waiting for Node; a worker thread keeps the loop free meanwhile.
        # The watchdog (see _launch) ends the server with Python all the same.
        await asyncio.to_thread(self.start_sync)

    def _installation(self) -> Installation:
        if self.server_dir is not None:  # the caller's own install: run it as it is
            return locate(self.server_dir)
        folder = find_server_dir()
        if folder != clone_server_dir():  # a clone's is ./scripts/setup's business
            install_server(folder, progress=self._progress)
        return locate(folder)

    def _start_on_some_port(self, installation: Installation) -> None:
        attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._requested_port or _free_port()
            if self._launch(installation, port):
                return
            if attempt == attempts:
                break
        raise DevServerError(
            f"port {port} is in use; the embedded server could not bind it"
            + ("" if self._requested_port is not None else f" after {attempts} free ports")
        )

    def _launch(self, installation: Installation, port: int) -> bool:
        """Run the server on ``port``; False if the port was taken, else ready or an error."""
        workdir = self._prepare_workdir()
        self._port = port
        log = open(workdir / "stdout.txt", "wb")  # noqa: SIM115 - the child holds it
        with log:
            # stdin is a pipe whose write end only this process holds (never written to): the
            # watchdog preloaded into node exits when it closes, which is when Python ends,
            # however it ends and from whichever thread the server was started.
            self._process = subprocess.Popen(
                self._command(installation, port, workdir),
                cwd=workdir,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_death_signal_setter(),  # noqa: PLW1509
            )
        if self._wait_until_ready(workdir):
            return True
        self._reap()
        return False

    def _prepare_workdir(self) -> Path:
        workdir = self._workdir
        assert workdir is not None
        (workdir / "stdout.txt").unlink(missing_ok=True)
        config = {"admins": {self.user: self.password}, "log": {"file": str(workdir / "log.txt")}}
        (workdir / "config.json").write_text(json.dumps(config), encoding="utf-8")
        return workdir

    def _command(self, installation: Installation, port: int, workdir: Path) -> list[str]:
        command = [installation.node, "--unhandled-rejections=warn"]
        command += ["--require", str(shipped_dir() / WATCHDOG), str(installation.script)]
        command += ["-p", str(port), "-o", "127.0.0.1", "-n"]
        command += ["-d", f"{workdir}{os.sep}", "-c", str(workdir / "config.json")]
        if self.in_memory:
            command.append("-m")
        return command

    def _wait_until_ready(self, workdir: Path) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                output = self._output_tail(workdir)
                if "EADDRINUSE" in output:
                    return False
                raise DevServerError(
                    f"the embedded server exited at start-up (code "
                    f"{self._process.returncode if self._process else '?'}); its output:\n{output}"
                )
            if self._answers_as_admin():
                return True
            time.sleep(0.05)
        output = self._output_tail(workdir)
        raise DevServerError(
            f"the embedded server did not answer on port {self._port} within "
            f"{self.start_timeout:.0f} s; its output:\n{output}"
        )

    def _answers_as_admin(self) -> bool:
        # Checking the admin's session, not just GET /, proves that the server answering on
        # this port is ours (another process could hold the port if ours failed to bind it).
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}
        connection = http.client.HTTPConnection("127.0.0.1", self._port, timeout=1.0)
        try:
            connection.request("GET", "/_session", headers=headers)
            answer = connection.getresponse()
            body = answer.read()
        except OSError:
            return False
        finally:
            connection.close()
        if answer.status != 200:
            return False
        with contextlib.suppress(ValueError, AttributeError):
            context = json.loads(body)["userCtx"]
            return bool(context["name"] == self.user and "_admin" in context["roles"])
        return False

    @staticmethod
    def _output_tail(workdir: Path, lines: int = 20) -> str:
        path = workdir / "stdout.txt"
        if not path.is_file():
            return "(no output)"
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return "\n".join(text[-lines:]) or "(no output)"

    # -- stopping ----------------------------------------------------------------------------

    def stop_sync(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and delete its files. Idempotent."""
        try:
            self._reap()
        finally:
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None

    async def stop(self) -> None:
        """Stop the server and delete its files, without blocking the event loop."""
        await asyncio.to_thread(self.stop_sync)

    def _reap(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
        finally:
            if process.stdin is not None:
                process.stdin.close()

    def kill_sync(self) -> None:
        """End the process abruptly but keep its files: a crash, for fault tests."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=5)

    def restart_sync(self) -> None:
        """Stop the process and start it again on the same port with the same files."""
        self._reap()
        installation = self._installation()
        port = self.port
        if not self._launch(installation, port):
            raise DevServerError(f"port {port} was taken while the server was restarting")

    async def restart(self) -> None:
        """:meth:`restart_sync` without blocking the event loop."""
        await asyncio.to_thread(self.restart_sync)

    # -- context managers --------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start_sync()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_sync()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
