"""How the store's queries read views: index lookup, view keys in stored form, range bounds.

Every index of a model is a view emitting ``(key, null)`` (``true`` for a tombstoned document,
see :mod:`tor_async_couchdb._models._views`), read with ``include_docs=true`` and paged by key.
Keys are converted exactly as :meth:`Model.to_doc` stores the fields (datetimes as fixed-width
UTC strings, enums as their values, decimals as strings), by :func:`stored_value`.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, TypeVar

from .._exceptions import InvalidInputError
from .._models import Index, Model, stored_value, view_location

if TYPE_CHECKING:
    from ._mapper import Mapper

__all__ = [
    "HIGH",
    "UNBOUNDED",
    "check_range_index",
    "closing",
    "find_index",
    "index_for_values",
    "index_key",
    "lookup_params",
    "models_selector",
    "no_models",
    "open_bound",
    "page_docs",
    "range_params",
    "recent_params",
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


def lookup_params(
    mapper: Mapper, model: type[Model], index: Index, values: Mapping[str, Any]
) -> dict[str, Any]:
    """The view parameters of an equality query of ``values`` through ``index``: one key,
    or several where a codec indexes a field under keys of its own (a blind index, under
    every live key during a key rotation)."""
    key = index_key(model, index, [values[field] for field in index.fields])
    parts = [key] if len(index.fields) == 1 else list(key)
    choices = [
        mapper.index_keys(model, field, part)
        for field, part in zip(index.fields, parts, strict=True)
    ]
    keys: list[Any] = [list(combination) for combination in itertools.product(*choices)]
    if len(index.fields) == 1:
        keys = [k[0] for k in keys]
    return {"startkey": keys[0], "endkey": keys[0]} if len(keys) == 1 else {"keys": keys}


def check_range_index(mapper: Mapper, model: type[Model], index: Index) -> None:
    """Refuse a range read of an index holding encoded values (a blind index): only
    equality has a meaning there."""
    encoded = [f for f in index.fields if mapper.encodes_index(model, f)]
    if encoded:
        raise InvalidInputError(
            f"index {index.name!r} of {model.__qualname__} holds encoded values of "
            f"{encoded}: it answers equality queries (query), not ranges"
        )


def range_params(
    model: type[Model],
    index: Index,
    *,
    prefix: Sequence[Any],
    start: Any,
    end: Any,
    inclusive_start: bool,
    inclusive_end: bool,
    descending: bool,
) -> tuple[dict[str, Any], Any] | None:
    """The view parameters of a range read (see :meth:`Database.query_range`) and the key of
    rows to skip (an exclusive start; :data:`UNBOUNDED` for none), or None for a range that
    holds nothing."""
    lead = list(prefix)
    compound = len(index.fields) > 1
    if not compound and lead:
        raise InvalidInputError(f"index {index.name!r} has one field: it takes no prefix")

    def key(bound: Any, *, past_its_rows: bool) -> tuple[Any, bool]:
        """The view key of a bound, and whether it is partial (fewer values than fields).

        A partial key ``[v]`` sorts before every ``[v, x]``; ``[v, {}]`` sorts after them
        all, so a bound that must take in (or leave out) the rows under it uses that.
        """
        values = [*lead, *(bound if compound and isinstance(bound, tuple) else (bound,))]
        partial = compound and len(values) < len(index.fields)
        view_key = index_key(model, index, values)
        return ([*view_key, HIGH] if partial and past_its_rows else view_key), partial

    lead_key = index_key(model, index, lead) if lead else []
    low_open, high_open = open_bound(lead_key, compound, descending)
    params: dict[str, Any] = {"descending": descending, "inclusive_end": inclusive_end}
    skip_key: Any = UNBOUNDED
    if start is None:
        params["startkey"] = low_open
    else:
        # Ascending, an exclusive start must pass its rows; descending, an inclusive one.
        params["startkey"], partial = key(start, past_its_rows=descending == inclusive_start)
        if not inclusive_start and not partial:
            skip_key = params["startkey"]
    if end is None:
        params["endkey"] = high_open
    else:
        params["endkey"], _ = key(end, past_its_rows=descending != inclusive_end)
        if start is not None and not inclusive_start and under(end, start, len(lead), index):
            # The start leaves out every row under it, the end lies among them: nothing is
            # in between (and CouchDB refuses a range whose start is past its end).
            return None
    for name in ("startkey", "endkey"):
        if params[name] is UNBOUNDED:
            del params[name]
    return params, skip_key


def recent_params(model: type[Model], index: Index, prefix: Sequence[Any]) -> dict[str, Any]:
    """The view parameters of a most-recent read: descending from ``[*prefix, {}]`` to
    ``[*prefix]`` (the whole index without a prefix)."""
    if len(index.fields) == 1 and prefix:
        raise InvalidInputError(f"index {index.name!r} has one field: it takes no prefix")
    params: dict[str, Any] = {"descending": True}
    if prefix:
        lead = index_key(model, index, list(prefix))
        params["startkey"], params["endkey"] = [*lead, HIGH], lead
    return params


def models_selector(
    model: type[Model], selector: Mapping[str, Any], *, include_tombstoned: bool
) -> dict[str, Any]:
    """The Mango selector of :meth:`Database.find_models`: ``selector`` and the model's type
    (any version) and, unless ``include_tombstoned``, not tombstoned."""
    type_name = model.couch_info().type_name
    clauses: list[Mapping[str, Any]] = [
        {"type": {"$regex": f"^{type_name}_v[0-9]+\\.[0-9]+$"}},
        selector,
    ]
    if not include_tombstoned:
        clauses.append({"$or": [{"tombstone": {"$exists": False}}, {"tombstone": False}]})
    return {"$and": clauses}


def page_docs(
    page: Iterable[Mapping[str, Any]], *, include_tombstoned: bool, skip_key: Any
) -> list[Any]:
    """The documents of a page of view rows read with ``include_docs``, leaving out
    tombstoned ones (unless ``include_tombstoned``), rows keyed ``skip_key`` (an exclusive
    start) and rows whose document was deleted while the view was read (the index still had
    its row: no ``doc``, or null on CouchDB)."""
    if skip_key is UNBOUNDED and not include_tombstoned:  # the common case, in one pass
        found = [row.get("doc") for row in page if row.get("value") is not True]
        return [doc for doc in found if doc is not None]
    docs = []
    for row in page:
        if row.get("value") is True and not include_tombstoned:
            continue
        if skip_key is not UNBOUNDED and row.get("key") == skip_key:
            continue
        doc = row.get("doc")
        if doc is not None:
            docs.append(doc)
    return docs


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
