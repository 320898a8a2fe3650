"""Checks of the protection markers on a model class, made when the class is created.

:func:`check_model` is what the mapper calls for each model before it reads or writes one (the
integrator wires it into ``Model.__pydantic_init_subclass__``, after ``_define``): a marker on a
field that cannot hold it is a :class:`ModelDefinitionError` naming the model and the field.
"""

from __future__ import annotations

from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

from .._exceptions import ModelDefinitionError
from .._models import FieldMarker, Indexed, Model
from ._cipher import Encrypted
from ._hashing import Hashed, HashedSecret

__all__ = ["check_model"]


def check_model(model: type[Model]) -> None:
    """Refuse protection markers that a field cannot carry. Raises :class:`ModelDefinitionError`.

    * ``Hashed()`` needs a ``HashedSecret`` (or ``HashedSecret | None``) field, and no other
      protection or index (each hash has its own salt: there is nothing to look up by).
    * ``Encrypted()`` must not be on a ``HashedSecret`` field; an ``Indexed()`` encrypted field
      needs ``Encrypted(blind_index=True)`` (it leaks equality: say so); a compound index
      cannot include an encrypted field (its key would be a list of blind indexes and values).
    * A field carries at most one ``Hashed()`` or ``Encrypted()``.
    """
    by_field: dict[str, list[FieldMarker]] = {}
    for name, marker in model.field_markers():
        by_field.setdefault(name, []).append(marker)
    indexes = model.__couch__.indexes if model.__couch__ is not None else ()  # (abstract: none)
    compound = {f for index in indexes if len(index.fields) > 1 for f in index.fields}
    for name, markers in by_field.items():
        problem = _problem(model.model_fields[name].annotation, markers, name in compound)
        if problem is not None:
            qualname = model.__qualname__
            raise ModelDefinitionError(f"{qualname}.{name}: {problem}", model=qualname)


def _problem(annotation: Any, markers: list[FieldMarker], in_compound: bool) -> str | None:
    protections = [m for m in markers if isinstance(m, Hashed | Encrypted)]
    if not protections:
        return None
    if len(protections) > 1:
        return "a field takes at most one Hashed() or Encrypted() marker"
    (protection,) = protections
    indexed = any(isinstance(m, Indexed) for m in markers)
    if isinstance(protection, Hashed):
        return _hashed_problem(annotation, indexed)
    assert isinstance(protection, Encrypted)
    return _encrypted_problem(annotation, protection, indexed, in_compound)


def _hashed_problem(annotation: Any, indexed: bool) -> str | None:
    if not _is_secret_type(annotation):
        return "Hashed() needs the type HashedSecret (or HashedSecret | None)"
    if indexed:
        return "a Hashed() field cannot be Indexed() (every hash has its own salt)"
    return None


def _encrypted_problem(
    annotation: Any, marker: Encrypted, indexed: bool, in_compound: bool
) -> str | None:
    if _mentions_secret(annotation):
        return "a HashedSecret field takes Hashed(), not Encrypted()"
    if indexed and not marker.blind_index:
        return (
            "an Indexed() encrypted field needs Encrypted(blind_index=True), which leaks "
            "which documents share a value"
        )
    if in_compound:
        return "an encrypted field cannot be part of a compound index"
    return None


def _is_secret_type(annotation: Any) -> bool:
    if annotation is HashedSecret:
        return True
    if get_origin(annotation) in (Union, UnionType):
        args = set(get_args(annotation))
        return args == {HashedSecret, NoneType}
    return False


def _mentions_secret(annotation: Any) -> bool:
    if annotation is HashedSecret:
        return True
    return any(_mentions_secret(arg) for arg in get_args(annotation))
