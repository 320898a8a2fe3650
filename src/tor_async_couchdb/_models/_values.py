"""The stored (JSON) form of one field value, as :meth:`Model.to_doc` writes it: view keys and
Mango selector values are built from it."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError

from .._exceptions import InvalidInputError
from ._model import _BASE_FIELDS, Model, _naive_datetime_path, _with_utc_datetimes

__all__ = ["stored_value"]


@functools.cache
def _field_adapter(model: type[Model], field: str) -> TypeAdapter[Any]:
    info = model.model_fields.get(field)
    if info is None or field in _BASE_FIELDS:
        raise InvalidInputError(f"{model.__qualname__} has no field {field!r}")
    annotation: Any = info.annotation if info.annotation is not None else Any
    if info.metadata:
        # The field's metadata too (Annotated validators, constraints, serializers), as the
        # model itself validates and dumps it.
        annotation = Annotated[(annotation, *info.metadata)]
    return TypeAdapter(annotation)


def stored_value(model: type[Model], field: str, value: Any) -> Any:
    """Return ``value`` of ``model.field`` in the JSON form :meth:`Model.to_doc` stores it.

    This is how keys of view queries are built; use it for Mango selectors too. The field's
    type, ``Annotated`` validators and serializers apply (``@field_validator`` methods of the
    model do not: they need a whole model). Raises
    :class:`InvalidInputError` for an unknown field or a value the field does not accept
    (including a naive datetime).
    """
    adapter = _field_adapter(model, field)
    where = f"{model.__qualname__}.{field}"
    try:
        python = adapter.validate_python(value)
    except ValidationError as exc:
        message = "; ".join(error["msg"] for error in exc.errors(include_url=False))
        raise InvalidInputError(f"not a value of {where}: {message}") from exc
    if _naive_datetime_path(python, "") is not None:
        raise InvalidInputError(f"{where}: a datetime needs a timezone, e.g. datetime.now(UTC)")
    # Dumped by the model's own serializer, so field serializers apply as in to_doc.
    holder = model.model_construct(**{field: python})
    serializer = model.__pydantic_serializer__
    include = {field}
    return _with_utc_datetimes(
        serializer.to_python(holder, include=include)[field],
        serializer.to_python(holder, mode="json", include=include)[field],
    )
