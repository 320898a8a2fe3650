"""What an installer puts into a database, read and validated before anything is written.

Design documents come from the models of Python modules (:func:`tor_async_couchdb.design_docs`)
and from folders of JSON files, on disk or inside a Python package (``importlib.resources``,
so a service's own package can carry its installer). Seed documents come from folders of JSON
files too. Every file is parsed and checked here, so a broken file stops the install before its
first request: nothing is half-installed because of bad input.
"""

from __future__ import annotations

import importlib
import importlib.resources
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from .. import _ids, _models
from .._exceptions import InvalidInputError, ModelDefinitionError
from .._protect import SignatureCodec, validate_doc_update_design

__all__ = [
    "InstallSpec",
    "Security",
    "design_matches",
    "design_docs_from_folder",
    "models_from_module",
    "package_folder",
    "seed_docs_from_folder",
]

_DESIGN_PREFIX = "_design/"


@dataclass(frozen=True, slots=True)
class Security:
    """A database's ``_security`` object: who may administer it and who may read and write it.

    An empty ``members`` (no names, no roles) means: anyone may read (CouchDB 3 then still
    keeps new databases admin-only unless told otherwise; say who the members are).
    """

    admin_names: tuple[str, ...] = ()
    admin_roles: tuple[str, ...] = ()
    member_names: tuple[str, ...] = ()
    member_roles: tuple[str, ...] = ()

    def as_doc(self) -> dict[str, dict[str, list[str]]]:
        """The ``_security`` body, names and roles sorted (so equal objects compare equal)."""
        return {
            "admins": {"names": sorted(self.admin_names), "roles": sorted(self.admin_roles)},
            "members": {"names": sorted(self.member_names), "roles": sorted(self.member_roles)},
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Security:
        """Read a ``_security`` answer; missing parts (``{}`` of a fresh database) are empty."""

        def names(part: str, key: str) -> tuple[str, ...]:
            section = doc.get(part)
            values = section.get(key) if isinstance(section, Mapping) else None
            return tuple(str(v) for v in values) if isinstance(values, list) else ()

        return cls(
            admin_names=names("admins", "names"),
            admin_roles=names("admins", "roles"),
            member_names=names("members", "names"),
            member_roles=names("members", "roles"),
        )


@dataclass(frozen=True, slots=True)
class InstallSpec:
    """Everything one database should hold: checked, ready to compare with what is there.

    Build it with :meth:`build`, which reads and validates every source; the constructor takes
    documents already checked. ``security`` ``None`` leaves ``_security`` as it is.
    """

    database: str
    design_docs: tuple[dict[str, Any], ...] = ()
    seeds: tuple[dict[str, Any], ...] = ()
    security: Security | None = None
    sources: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def build(
        cls,
        database: str,
        *,
        models: Iterable[type[_models.Model]] = (),
        model_modules: Sequence[str] = (),
        design_folders: Sequence[Traversable] = (),
        seed_folders: Sequence[Traversable] = (),
        security: Security | None = None,
        signature: SignatureCodec | None = None,
    ) -> InstallSpec:
        """Read and validate every source. Raises :class:`InvalidInputError` for a module that
        does not import, a file that is not valid JSON (naming file and line) or not a valid
        document, or two sources giving one document id. (The database name is checked by
        ``couch.database``, before any request.)

        With ``signature`` (the signing codec of the service's key ring: signing is
        configured), the server-side write guard is installed too (a ``validate_doc_update``
        design document refusing unsigned writes by non-admin users) and every seed document is
        signed, as the service's own writes are.
        """
        all_models = [*models]
        for module in model_modules:
            all_models += models_from_module(module)
        designs = [*_model_design_docs(all_models)]
        for folder in design_folders:
            designs += design_docs_from_folder(folder)
        seeds: list[dict[str, Any]] = []
        for folder in seed_folders:
            seeds += seed_docs_from_folder(folder)
        if signature is not None:
            designs.append(validate_doc_update_design())
            seeds = [signature.sign(seed) for seed in seeds]
        _check_unique(designs, "design document")
        _check_unique(seeds, "seed document")
        sources = (*model_modules, *(str(f) for f in design_folders), *map(str, seed_folders))
        return cls(database, tuple(designs), tuple(seeds), security, sources)


def design_matches(current: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    """Whether an installed design document holds what ``wanted`` says. Fields the server
    adds (``_rev``) or that someone else added are not ours to judge."""
    return current is not None and all(
        current.get(key) == value for key, value in wanted.items() if key != "_id"
    )


def _model_design_docs(models: list[type[_models.Model]]) -> list[dict[str, Any]]:
    if not models:
        return []
    try:
        return _models.design_docs(models)
    except ModelDefinitionError as error:
        raise InvalidInputError(f"the models do not make a valid set: {error}") from error


def _check_unique(docs: list[dict[str, Any]], what: str) -> None:
    seen: set[str] = set()
    for doc in docs:
        if doc["_id"] in seen:
            raise InvalidInputError(f"two sources give {what} {doc['_id']!r}")
        seen.add(doc["_id"])


def models_from_module(name: str) -> list[type[_models.Model]]:
    """The concrete model classes defined in module ``name`` (not those it imports).

    The current directory is searched too, as ``python -m`` would: an installer is usually run
    from the service's checkout. Raises :class:`InvalidInputError` if the module does not import
    or defines no model.
    """
    _search_current_directory()
    try:
        module = importlib.import_module(name)
    except Exception as error:  # any failure of someone else's module is a bad --models value
        raise InvalidInputError(
            f"cannot import models module {name!r}: {type(error).__name__}: {error}"
        ) from error
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, _models.Model)
        and value.__module__ == module.__name__
        and _is_concrete(value)
    ]
    if not found:
        raise InvalidInputError(f"module {name!r} defines no concrete tor_async_couchdb.Model")
    return found


def _search_current_directory() -> None:
    # A console script's sys.path lacks the current directory, which ``python -m`` has.
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")


def _is_concrete(model: type[_models.Model]) -> bool:
    try:
        model.couch_info()
    except ModelDefinitionError:
        return False  # an abstract base: it has no documents of its own
    return True


def package_folder(spec: str) -> Traversable:
    """The folder ``FOLDER`` inside Python package ``PACKAGE``, given as ``PACKAGE:FOLDER``.

    Raises :class:`InvalidInputError` if the form is wrong, the package does not import or the
    folder is not in it.
    """
    package, sep, folder = spec.partition(":")
    if not sep or not package or not folder:
        raise InvalidInputError(f"a package folder is PACKAGE:FOLDER, got {spec!r}")
    _search_current_directory()
    try:
        root = importlib.resources.files(package)
    except (ImportError, TypeError) as error:
        raise InvalidInputError(f"cannot import package {package!r}: {error}") from error
    found = root.joinpath(*folder.strip("/").split("/"))
    if not found.is_dir():
        raise InvalidInputError(f"package {package!r} has no folder {folder!r}")
    return found


def _json_files(folder: Traversable) -> list[Traversable]:
    if not folder.is_dir():
        raise InvalidInputError(f"{folder} is not a folder")
    return sorted(
        (item for item in folder.iterdir() if item.is_file() and item.name.endswith(".json")),
        key=lambda item: item.name,
    )


def _no_constant(name: str) -> None:
    # NaN and Infinity are not JSON, though Python's parser accepts them.
    raise ValueError(f"{name} is not valid JSON")


def _parse(item: Traversable, where: str) -> Any:
    try:
        text = item.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"{where}: cannot read: {error}") from error
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise InvalidInputError(
            f"{where}: line {error.lineno}, column {error.colno}: invalid JSON: {error.msg}"
        ) from error
    except ValueError as error:
        raise InvalidInputError(f"{where}: {error}") from error


def _read_object(item: Traversable, where: str) -> dict[str, Any]:
    value = _parse(item, where)
    if not isinstance(value, dict):
        raise InvalidInputError(f"{where}: a document must be a JSON object")
    return value


def _where(folder: Traversable, item: Traversable) -> str:
    return str(Path(str(folder)) / item.name) if isinstance(folder, Path) else str(item)


def design_docs_from_folder(folder: Traversable) -> list[dict[str, Any]]:
    """The design documents of ``folder``'s ``*.json`` files, one per file, by file name.

    A file without ``_id`` gets ``_design/<file name without .json>``; a ``_rev`` (as in an
    exported document) is dropped. Raises :class:`InvalidInputError` naming the file (and line)
    for invalid JSON or a document that is not a design document with views of map functions.
    """
    docs = []
    for item in _json_files(folder):
        where = _where(folder, item)
        doc = _read_object(item, where)
        doc.pop("_rev", None)
        doc.setdefault("_id", _DESIGN_PREFIX + item.name.removesuffix(".json"))
        _check_design_doc(doc, where)
        docs.append(doc)
    return docs


def _check_design_doc(doc: dict[str, Any], where: str) -> None:
    doc_id = doc["_id"]
    if not isinstance(doc_id, str) or not doc_id.startswith(_DESIGN_PREFIX):
        raise InvalidInputError(f"{where}: a design document's _id must start with '_design/'")
    _ids.check_doc_id(doc_id)
    views = doc.get("views", {})
    if not isinstance(views, dict):
        raise InvalidInputError(f"{where}: 'views' must be an object")
    for name, view in views.items():
        if not isinstance(view, dict) or not isinstance(view.get("map"), str):
            raise InvalidInputError(f"{where}: view {name!r} needs a 'map' function (a string)")
        if "reduce" in view and not isinstance(view["reduce"], str):
            raise InvalidInputError(f"{where}: view {name!r} has a 'reduce' that is not a string")


def seed_docs_from_folder(folder: Traversable) -> list[dict[str, Any]]:
    """The seed documents of ``folder``'s ``*.json`` files: one document, or a list of them,
    per file. Each needs a stable ``_id`` (so a second install finds it) and no ``_rev``.

    Raises :class:`InvalidInputError` naming the file for invalid JSON or a document without a
    usable ``_id``.
    """
    docs = []
    for item in _json_files(folder):
        where = _where(folder, item)
        for doc in _read_seed_file(item, where):
            _check_seed(doc, where)
            docs.append(doc)
    return docs


def _read_seed_file(item: Traversable, where: str) -> list[dict[str, Any]]:
    value = _parse(item, where)
    docs = value if isinstance(value, list) else [value]
    if not all(isinstance(doc, dict) for doc in docs):
        raise InvalidInputError(f"{where}: every seed document must be a JSON object")
    return docs


def _check_seed(doc: dict[str, Any], where: str) -> None:
    doc_id = doc.get("_id")
    if not isinstance(doc_id, str) or not doc_id:
        raise InvalidInputError(f"{where}: a seed document needs a stable '_id'")
    if doc_id.startswith(("_design/", "_local/")):
        raise InvalidInputError(f"{where}: seed {doc_id!r} must be a plain document")
    if "_rev" in doc:
        raise InvalidInputError(f"{where}: seed {doc_id!r} must not carry a '_rev'")
    _ids.check_doc_id(doc_id)
