"""DevServer's options are checked before anything starts, with errors naming the option."""

from __future__ import annotations

from typing import Any

import pytest

import tor_async_couchdb as tac
from tor_async_couchdb.devserver import DevServer, DevServerError, DevServerOptionError
from tor_async_couchdb.testing import server_from_url


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"port": 99999}, "port must be an integer from 1 to 65535"),
        ({"port": 0}, "port must be"),
        ({"port": -1}, "port must be"),
        ({"port": "5984"}, "port must be"),
        ({"port": True}, "port must be"),
        ({"user": ""}, "user must be a non-empty string"),
        ({"user": "ad:min"}, "user must be"),
        ({"password": ""}, "password must be a non-empty string"),
        ({"start_timeout": 0}, "start_timeout must be a positive number"),
        ({"start_timeout": float("nan")}, "start_timeout must be"),
        ({"start_timeout": "30"}, "start_timeout must be"),
    ],
)
def test_a_bad_option_is_a_typed_error_naming_it(options: dict[str, Any], named: str) -> None:
    with pytest.raises(DevServerOptionError, match=named) as caught:
        DevServer(**options)
    # Both branches of the tree catch it: the command line reports DevServerError, callers
    # that validate input catch InvalidInputError (or ValueError).
    assert isinstance(caught.value, DevServerError)
    assert isinstance(caught.value, tac.InvalidInputError)
    assert isinstance(caught.value, ValueError)


def test_good_options_are_kept_and_nothing_starts() -> None:
    server = DevServer(port=65535, user="root", password="s3cret", start_timeout=0.5)
    assert (server.user, server.password, server.start_timeout) == ("root", "s3cret", 0.5)
    assert not server.running
    assert server.pid is None


def test_the_url_with_credentials_survives_any_password() -> None:
    server = DevServer(user="ad@min", password="p@ss/w:rd,%2C")
    server._port = 5985  # as if started: only the URL is under test
    parsed = server_from_url(server.url_with_credentials)
    assert parsed.auth == ("ad@min", "p@ss/w:rd,%2C")
    assert parsed.url == "http://127.0.0.1:5985"
    assert "," not in server.url_with_credentials  # COUCHDB_URL splits lists at commas
