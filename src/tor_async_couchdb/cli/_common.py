"""What every command shares: the connection options, output, logging and exit codes.

Exit codes: 0 success (and healthy), 1 the operation failed or the database is unhealthy, 2 the
command line itself is wrong (click's usage errors, a database name CouchDB rejects, a deletion
not confirmed).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import click
from rich.console import Console

import tor_async_couchdb as tac

from .._exceptions import CouchError, InvalidNameError

__all__ = [
    "Connection",
    "connection_options",
    "err_console",
    "json_option",
    "log_level_option",
    "out_console",
    "print_json",
    "run",
]

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

EXIT_FAILED = 1
EXIT_USAGE = 2
_DEFAULT_URL = "http://127.0.0.1:5984"
_WIDE = 160  # captured output is not wrapped at 80 columns: a URL stays on one line


def _console(*, stderr: bool) -> Console:
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, soft_wrap=True, width=_WIDE)
    return console


def out_console() -> Console:
    """Where results go (stdout)."""
    return _console(stderr=False)


def err_console() -> Console:
    """Where errors and progress go (stderr), so that ``--json`` output stays parseable."""
    return _console(stderr=True)


def print_json(data: object) -> None:
    """Print ``data`` as JSON on stdout, the only thing a ``--json`` command prints there."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@dataclass(frozen=True, slots=True)
class Connection:
    """Where the server is and who we are there; the password never shows in a repr."""

    url: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    request_timeout: float = 60.0

    def client(
        self, *, codecs: tac.Protection | None = None, quarantine: bool = False
    ) -> tac.CouchDB:
        """A new client (the caller closes it: ``async with``), with ``codecs`` and
        ``quarantine`` as :class:`tac.CouchDB` takes them."""
        auth = (self.user, self.password or "") if self.user is not None else None
        timeouts = tac.Timeouts(connect=min(10.0, self.request_timeout), read=self.request_timeout)
        return tac.CouchDB(
            self.url, auth=auth, timeouts=timeouts, codecs=codecs or (), quarantine=quarantine
        )


def _read_credentials_file(path: Path) -> tuple[str, str]:
    first = path.read_text(encoding="utf-8").splitlines()[:1]
    user, sep, password = (first[0] if first else "").strip().partition(":")
    if not sep or not user:
        # The file's content is never shown: it is a password.
        raise click.BadParameter(
            f"{path} must hold one line USER:PASSWORD", param_hint="'--credentials-file'"
        )
    return user, password


def _split_url(url: str) -> tuple[str, str | None, str | None]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter("must be http(s)://host[:port]", param_hint="'--url'")
    try:
        port = parts.port
    except ValueError as error:
        raise click.BadParameter("has an invalid port", param_hint="'--url'") from error
    netloc = parts.hostname + (f":{port}" if port else "")
    bare = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return bare, user, password


def make_connection(
    url: str,
    user: str | None,
    password: str | None,
    credentials_file: Path | None,
    request_timeout: float,
) -> Connection:
    """Options first, then the credentials file, then the URL's own ``user:password@``."""
    bare, url_user, url_password = _split_url(url)
    if credentials_file is not None and user is None:
        user, file_password = _read_credentials_file(credentials_file)
        password = password if password is not None else file_password
    if user is None:
        user, password = url_user, password if password is not None else url_password
    return Connection(bare, user, password, request_timeout)


def connection_options(prefix: str = "") -> Callable[[F], F]:
    """``--url``, ``--user``, ``--password``, ``--credentials-file``, ``--request-timeout``
    (``prefix`` ``"remote-"`` gives the remote server's, with ``COUCHDB_REMOTE_*`` variables).
    The command receives one :class:`Connection` as ``connection`` (or ``remote``)."""
    env = "COUCHDB_" + prefix.upper().replace("-", "_")
    name = prefix.rstrip("-").replace("-", "_") or "connection"
    who = "the remote server" if prefix else "the server"

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            values = [kwargs.pop(f"{prefix}{k}".replace("-", "_")) for k in _KEYS]
            kwargs[name] = make_connection(*values)
            return command(**kwargs)

        options = [
            click.option(
                f"--{prefix}url",
                envvar=f"{env}URL",
                default=None if prefix else _DEFAULT_URL,
                required=bool(prefix),
                show_default=not prefix,
                help=f"URL of {who}; may hold USER:PASSWORD@ [env {env}URL].",
            ),
            click.option(
                f"--{prefix}user", envvar=f"{env}USER", help=f"User name [env {env}USER]."
            ),
            click.option(
                f"--{prefix}password",
                envvar=f"{env}PASSWORD",
                help=f"Password; prefer the environment or a file [env {env}PASSWORD].",
            ),
            click.option(
                f"--{prefix}credentials-file",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="File whose first line is USER:PASSWORD.",
            ),
            click.option(
                f"--{prefix}request-timeout",
                type=click.FloatRange(min=0.1),
                default=60.0,
                show_default=True,
                hidden=bool(prefix),
                help="Seconds of silence before a request fails.",
            ),
        ]
        decorated: Callable[..., Any] = wrapper
        for option in reversed(options):
            decorated = option(decorated)
        return decorated  # type: ignore[return-value]

    return decorate


_KEYS = ("url", "user", "password", "credentials_file", "request_timeout")


def _set_log_level(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    logging.basicConfig(
        level=value.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )


log_level_option = click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default=None,
    expose_value=False,
    is_eager=True,
    callback=_set_log_level,
    help="Log records to stderr from this level on (requests are logged at debug, never "
    "with credentials). Default: warning.",
)

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the result as JSON on stdout."
)


def run(main: Coroutine[Any, Any, int]) -> None:
    """Run a command's coroutine and turn its outcome into the documented exit code."""
    try:
        code = asyncio.run(main)
    except InvalidNameError as error:
        raise click.UsageError(str(error)) from error
    except (CouchError, TimeoutError) as error:
        _print_error(error)
        raise SystemExit(EXIT_FAILED) from None
    if code:
        raise SystemExit(code)


def _print_error(error: BaseException) -> None:
    console = err_console()
    console.print(f"error: {error}", markup=False)
    for note in getattr(error, "__notes__", ()):
        console.print(f"  {note}", markup=False)
    cause = error.__cause__
    if isinstance(cause, CouchError | TimeoutError) and str(cause) not in str(error):
        console.print(f"  caused by: {cause}", markup=False)


def database_argument(command: F) -> F:
    """The ``DATABASE`` argument. Its name is checked by ``couch.database`` before any request;
    :func:`run` turns a rejected name into a usage error."""
    return click.argument("database")(command)
