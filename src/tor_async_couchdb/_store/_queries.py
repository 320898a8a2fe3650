"""How the store's queries read views: index lookup, view keys in stored form, range bounds.

Every index of a model is a view emitting ``(key, null)`` (``true`` for a tombstoned document,
see :mod:`tor_async_couchdb._models._views`), read with ``include_docs=true`` and paged by key.
Keys are converted exactly as :meth:`Model.to_doc` stores the fields (datetimes as fixed-width
UTC strings, enums as their values, decimals as strings), by :func:`stored_value`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

from .._exceptions import InvalidInputError
from .._models import Index, Model, stored_value, view_location

__all__ = [
    "HIGH",
    "UNBOUNDED",
    "closing",
    "find_index",
    "index_for_values",
    "index_key",
    "no_models",
    "open_bound",
    "under",
    "view_of",
]

T = TypeVar("T")

# Sorts after every string, number, list and null in CouchDB's collation: the end of a prefix.
HIGH: Final[dict[str, Any]] = {}


class _Unbounded:
    def __repr__(self) -> str:
        return "UNBOUNDED"


UNBOUNDED: Final[Any] = _Unbounded()


def under(bound: Any, partial: Any, lead: int, index: Index) -> bool:
    """Whether range bound ``bound`` lies among the rows under bound ``partial`` of a compound
    ``index`` (after ``lead`` prefix values), ``partial`` having fewer values than the index."""
    if len(index.fields) < 2:
        return False
    start = partial if isinstance(partial, tuple) else (partial,)
    end = bound if isinstance(bound, tuple) else (bound,)
    return lead + len(start) < len(index.fields) and end[: len(start)] == start


async def no_models() -> AsyncIterator[Any]:
    return
    yield  # an async generator that yields nothing


def index_key(model: type[Model], index: Index, values: Sequence[Any]) -> Any:
    """The view key (or key prefix, for fewer values) of ``values`` of ``index``'s fields."""
    if len(values) > len(index.fields):
        raise InvalidInputError(
            f"index {index.name!r} has {len(index.fields)} fields, got {len(values)} values"
        )
    stored = [stored_value(model, f, v) for f, v in zip(index.fields, values, strict=False)]
    return stored[0] if len(index.fields) == 1 else stored


def find_index(model: type[Model], name: str) -> Index:
    try:
        return model.couch_info().index(name)
    except KeyError:
        known = ", ".join(i.name for i in model.couch_info().indexes) or "none"
        raise InvalidInputError(
            f"{model.__qualname__} has no index {name!r} (indexes: {known})"
        ) from None


def index_for_values(model: type[Model], fields: Iterable[str]) -> Index:
    wanted = set(fields)
    for index in model.couch_info().indexes:
        if set(index.fields) == wanted and len(index.fields) == len(wanted):
            return index
    raise InvalidInputError(
        f"{model.__qualname__} has no index over exactly {sorted(wanted)}: declare one "
        "(Indexed() or indexes={...}), or use find_models()"
    )


def view_of(model: type[Model], index: Index | None = None) -> tuple[str, str]:
    """(design document name, view name) as :meth:`Database.view` takes them."""
    design, view = view_location(model, index)
    return design.removeprefix("_design/"), view


def open_bound(lead: list[Any], compound: bool, descending: bool) -> tuple[Any, Any]:
    """The (start, end) keys of an open range: the prefix's edges, or no bound at all."""
    if not compound or not lead:
        return UNBOUNDED, UNBOUNDED
    return ([*lead, HIGH], [*lead]) if descending else ([*lead], [*lead, HIGH])


@asynccontextmanager
async def closing(rows: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Close an async generator when the loop over it ends early (a limit, an error), so its
    pending request state is released at once, not when it is garbage-collected."""
    try:
        yield rows
    finally:
        aclose = getattr(rows, "aclose", None)
        if aclose is not None:
            await aclose()
