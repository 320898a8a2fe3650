"""The public surface: one sorted ``__all__``, every name importable, nothing private leaks."""

import tor_async_couchdb as tac


def test_all_is_sorted_and_unique() -> None:
    assert list(tac.__all__) == sorted(set(tac.__all__))


def test_every_exported_name_exists() -> None:
    missing = [name for name in tac.__all__ if not hasattr(tac, name)]
    assert missing == []


def test_no_private_module_is_exported() -> None:
    assert not [name for name in tac.__all__ if name.startswith("_") and name != "__version__"]


def test_every_exported_error_derives_from_the_one_root() -> None:
    errors = [getattr(tac, name) for name in tac.__all__]
    errors = [
        e
        for e in errors
        if isinstance(e, type) and issubclass(e, BaseException) and not issubclass(e, Warning)
    ]
    assert errors
    assert all(issubclass(error, tac.CouchError) for error in errors)
