"""Certificate paths given to the client: a file that cannot be used is a typed error naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

import tor_async_couchdb as tac


def test_missing_ca_file_is_a_configuration_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    with pytest.raises(tac.ConfigurationError, match=r"no-such-ca\.pem") as caught:
        tac.CouchDB("https://couch.example:6984", verify=str(missing))
    assert isinstance(caught.value, tac.InvalidInputError)
    assert "CA file" in str(caught.value)


def test_ca_file_that_is_not_pem_is_a_configuration_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage-ca.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(tac.ConfigurationError, match=r"garbage-ca\.pem"):
        tac.CouchDB("https://couch.example:6984", verify=str(garbage))


def test_missing_client_certificate_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "client.pem"
    with pytest.raises(tac.ConfigurationError, match="client certificate") as caught:
        tac.CouchDB("https://couch.example:6984", client_cert=str(missing))
    assert str(missing) in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)


def test_client_certificate_and_key_pair_names_both(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("junk\n")
    with pytest.raises(tac.ConfigurationError) as caught:
        tac.CouchDB("https://couch.example:6984", client_cert=(str(cert), str(key)))
    assert "cert.pem" in str(caught.value)
    assert "key.pem" in str(caught.value)
