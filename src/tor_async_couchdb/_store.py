"""Persistence of models on a database handle: save, get, queries, update with retry, migration.

These are the methods of :class:`Database` that speak in models rather than documents
(``db.save(fruit)``, ``db.query(Fruit, color="red")``); they are written here, as a mixin,
so that the raw document API in ``_database.py`` stays one idea. Everything goes through that
raw API (``get_doc``, ``put_doc``, ``bulk_docs``, ``view``, ``find``).

How queries read: every index of a model is a view emitting ``(key, null)`` (``true`` for a
tombstoned document, see :mod:`._views`) read with ``include_docs=true``, paged by key in
bounded memory. Keys are converted exactly as :meth:`Model.to_doc` stores the field (datetimes
as fixed-width UTC strings, enums as their values, decimals as strings), by :func:`stored_value`.

Deleting: :meth:`~ModelMethods.delete_model` removes a document (CouchDB's own delete; the
method is not called ``delete`` because ``Database.delete()`` deletes the whole database);
:meth:`~ModelMethods.tombstone` is the never-delete style, which keeps the document and flags
it, and every query leaves tombstoned documents out unless ``include_tombstoned=True``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Final, Generic, Literal, TypeVar, cast

from pydantic import TypeAdapter, ValidationError

from ._config import DEFAULT_PAGE_SIZE, backoff_delay
from ._exceptions import Conflict, HTTPStatusError, InvalidInputError, NotFound
from ._ids import new_id
from ._model import (
    _BASE_FIELDS,
    Index,
    Model,
    _naive_datetime_path,
    _with_utc_datetimes,
    parse_type,
)
from ._views import design_docs, view_location

if TYPE_CHECKING:
    from ._database import Database

__all__ = [
    "ConflictRetry",
    "MigrationProgress",
    "ModelMethods",
    "SaveResult",
    "stored_value",
]

M = TypeVar("M", bound=Model)
T = TypeVar("T")
Change = Callable[[M], M | Awaitable[M]]

# Sorts after every string, number, list and null in CouchDB's collation: the end of a prefix.
_HIGH: Final[dict[str, Any]] = {}


class _Unbounded:
    def __repr__(self) -> str:
        return "UNBOUNDED"


_UNBOUNDED: Final[Any] = _Unbounded()


# --- value objects ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConflictRetry:
    """How :meth:`~ModelMethods.update` (and deletes with ``retry=``) meet a 409 Conflict.

    After a conflict the document is read again and the change applied again, up to
    ``attempts`` writes in all, waiting a capped exponential backoff between them
    (``backoff * 2**(n-1)``, at most ``max_backoff`` seconds; with ``jitter`` a uniform draw up
    to that, which spreads writers that collided at once). ``deadline`` (seconds, optional)
    bounds the whole operation: no retry starts after it. Then :class:`Conflict` is raised.
    """

    attempts: int = 10
    backoff: float = 0.01
    max_backoff: float = 1.0
    jitter: bool = True
    deadline: float | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise InvalidInputError("attempts must be at least 1")
        if self.backoff < 0 or self.max_backoff < 0:
            raise InvalidInputError("backoff values must be 0 or more")
        if self.deadline is not None and self.deadline <= 0:
            raise InvalidInputError("deadline must be positive (seconds)")

    @classmethod
    def immediate(cls, attempts: int) -> ConflictRetry:
        """Retry at once, without waiting, up to ``attempts`` writes."""
        return cls(attempts=attempts, backoff=0.0, max_backoff=0.0, jitter=False)

    @classmethod
    def never(cls) -> ConflictRetry:
        """One attempt: a conflict is raised as it comes."""
        return cls(attempts=1)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        return backoff_delay(retry, self.backoff, self.max_backoff, jitter=self.jitter)


@dataclass(frozen=True, slots=True)
class SaveResult(Generic[M]):
    """The outcome of one model of :meth:`~ModelMethods.save_many`.

    ``model`` is the saved model (id and new rev set) when ``ok``; otherwise it is the model as
    sent (with the id it was given) and ``error`` says why it was not written (for example
    :class:`Conflict`). :meth:`unwrap` returns the saved model or raises the error.
    """

    model: M
    error: HTTPStatusError | None = None

    @property
    def ok(self) -> bool:
        """Whether the model was saved."""
        return self.error is None

    def unwrap(self) -> M:
        """Return the saved model. Raises the item's :class:`HTTPStatusError` if it failed."""
        if self.error is not None:
            raise self.error
        return self.model


@dataclass(frozen=True, slots=True)
class MigrationProgress:
    """Counts reported by :meth:`~ModelMethods.migrate` after each page (cumulative over runs
    resumed from a checkpoint).

    ``seen``: documents of the type read; ``upgraded``: rewritten at the current version;
    ``newer``: left alone because a newer version of the application wrote them;
    ``last_key``: the id of the last document processed; ``done``: the final report.
    """

    seen: int = 0
    upgraded: int = 0
    newer: int = 0
    last_key: str | None = None
    done: bool = False


Progress = Callable[[MigrationProgress], object]


# --- stored forms of values ------------------------------------------------------------------


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


def _under(bound: Any, partial: Any, lead: int, index: Index) -> bool:
    """Whether range bound ``bound`` lies among the rows under bound ``partial`` of a compound
    ``index`` (after ``lead`` prefix values), ``partial`` having fewer values than the index."""
    if len(index.fields) < 2:
        return False
    start = partial if isinstance(partial, tuple) else (partial,)
    end = bound if isinstance(bound, tuple) else (bound,)
    return lead + len(start) < len(index.fields) and end[: len(start)] == start


async def _no_models() -> AsyncIterator[Any]:
    return
    yield  # an async generator that yields nothing


def _index_key(model: type[Model], index: Index, values: Sequence[Any]) -> Any:
    """The view key (or key prefix, for fewer values) of ``values`` of ``index``'s fields."""
    if len(values) > len(index.fields):
        raise InvalidInputError(
            f"index {index.name!r} has {len(index.fields)} fields, got {len(values)} values"
        )
    stored = [stored_value(model, f, v) for f, v in zip(index.fields, values, strict=False)]
    return stored[0] if len(index.fields) == 1 else stored


def _find_index(model: type[Model], name: str) -> Index:
    try:
        return model.couch_info().index(name)
    except KeyError:
        known = ", ".join(i.name for i in model.couch_info().indexes) or "none"
        raise InvalidInputError(
            f"{model.__qualname__} has no index {name!r} (indexes: {known})"
        ) from None


def _index_for_values(model: type[Model], fields: Iterable[str]) -> Index:
    wanted = set(fields)
    for index in model.couch_info().indexes:
        if set(index.fields) == wanted and len(index.fields) == len(wanted):
            return index
    raise InvalidInputError(
        f"{model.__qualname__} has no index over exactly {sorted(wanted)}: declare one "
        "(Indexed() or indexes={...}), or use find_models()"
    )


def _view_of(model: type[Model], index: Index | None = None) -> tuple[str, str]:
    """(design document name, view name) as :meth:`Database.view` takes them."""
    design, view = view_location(model, index)
    return design.removeprefix("_design/"), view


def _checked_doc(instance: Model, **overrides: str | None) -> tuple[dict[str, Any], Model]:
    """The model validated again (given an id if it has none), and its document;
    ``overrides`` replace field values first (``id`` and ``rev`` for an update).

    Models are validated when built and on assignment, but ``model_construct`` and in-place
    changes of mutable values (``fruit.tags.append(3)``) skip that: validating once more here
    keeps a bad value from being written, before any request.
    """
    model = type(instance)
    fast = model.__couch_fast__  # the plain-Python lane of simple models (_fastlane.py)
    if fast is not None:
        found = fast.checked(instance.__dict__, overrides)
        if found is not None:
            return found[0], cast("Model", found[1])
    values = dict(instance.__dict__)
    if values.keys() != model.__pydantic_fields__.keys():
        # Not just the fields: a cached computed field, or some missing (model_construct).
        # (A field missing from a model_construct is left out: validation then names it.)
        values = {
            name: instance.__dict__[name]
            for name in model.model_fields
            if name in instance.__dict__
        }
        values.setdefault("id", None)
    values.update(overrides)
    if values["id"] is None:
        values["id"] = new_id()
    checked = model.model_validate(values)
    return checked.to_doc(), checked


def _with_rev(checked: M, rev: str) -> M:
    """``checked``, from :func:`_checked_doc`, given the rev its document was saved with.

    ``checked`` is the store's own copy, just validated and never handed out before: setting
    the rev on it directly (a revision string needs no validation) spares a copy and a
    validated assignment on every save.
    """
    checked.__dict__["rev"] = rev
    checked.__pydantic_fields_set__.add("rev")
    return checked


async def _apply(change: Change[M], current: M) -> M:
    changed = change(current)
    if inspect.isawaitable(changed):
        changed = await changed
    if not isinstance(changed, type(current)):
        raise InvalidInputError(
            f"the change must return a {type(current).__qualname__}, "
            f"not {type(changed).__name__} (model_copy(update=...) makes one)"
        )
    return changed


class _Attempts:
    """Counts the writes of one retried operation and waits between them, per the policy."""

    __slots__ = ("_done", "_policy", "_stop_at")

    def __init__(self, policy: ConflictRetry) -> None:
        self._policy = policy
        self._done = 0
        self._stop_at = None if policy.deadline is None else time.monotonic() + policy.deadline

    async def another(self) -> bool:
        """Wait before the next attempt and return True, or return False when used up."""
        self._done += 1
        if self._done >= self._policy.attempts:
            return False
        delay = self._policy.delay(self._done)
        if self._stop_at is not None and time.monotonic() + delay >= self._stop_at:
            return False
        if delay:
            await asyncio.sleep(delay)
        return True


def _exhausted(error: Conflict, policy: ConflictRetry) -> Conflict:
    error.add_note(f"still conflicting after the retries of {policy!r}")
    return error


# --- the mixin -------------------------------------------------------------------------------


class ModelMethods:
    """The model-level methods of :class:`Database` (mixed in; see ``_database.py``)."""

    __slots__ = ()

    @property
    def _raw(self) -> Database:
        # The mixin is only ever a base of Database; mypy cannot say "self is my subclass".
        return cast("Database", self)

    # -- single documents --------------------------------------------------------------------

    async def save(self, model: M) -> M:
        """Create or update ``model`` and return a copy with its id and new rev.

        A model without an id gets a time-ordered one (:func:`new_id`); a model with a rev
        updates that revision. The model is checked before any request. Raises
        :class:`ModelValidationError`, :class:`NotJSONError` (nothing written) and
        :class:`Conflict` if the rev is not the latest (or the id exists and no rev is given).
        """
        return await self._save_as(model)

    async def _save_as(self, model: M, **overrides: str | None) -> M:
        doc, checked = _checked_doc(model, **overrides)
        answer = await self._raw.put_doc(doc)
        return _with_rev(cast("M", checked), str(answer["rev"]))

    async def get(self, model: type[M], doc_id: str) -> M:
        """Read document ``doc_id`` as ``model``, upgrading an older version.

        Raises :class:`NotFound`, :class:`WrongTypeError` (another model's document, or a newer
        version) and :class:`ModelValidationError` (stored values that do not fit). A
        tombstoned document is returned (its ``tombstone`` is true).
        """
        return model.from_doc(await self._raw.get_doc(doc_id))

    async def get_many(
        self,
        model: type[M],
        ids: Sequence[str],
        *,
        missing: Literal["raise", "skip"] = "raise",
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> AsyncIterator[M]:
        """Read the documents ``ids`` as ``model``, in the order of ``ids``, through
        ``_all_docs`` (``page_size`` keys per request).

        An id with no document (never written, or deleted) raises :class:`NotFound` when it
        is reached with ``missing="raise"`` (the default); ``missing="skip"`` leaves it out.
        Tombstoned documents are returned. Raises what :meth:`get` raises.
        """
        rows = self._raw.all_docs(keys=list(ids), include_docs=True, page_size=page_size)
        async with _closing(rows):
            async for row in rows:
                doc = row.get("doc")
                if doc is not None:
                    yield model.from_doc(doc)
                elif missing == "raise":
                    raise NotFound(
                        f"no {model.__qualname__} document {row.get('key')!r}",
                        status=404,
                        error=str(row.get("error") or "not_found"),
                        reason="deleted" if row.get("value") else "missing",
                        doc_id=row.get("key"),
                    )

    async def delete_model(self, model: Model, *, retry: ConflictRetry | None = None) -> None:
        """Delete the document of ``model`` (a CouchDB delete: only a deletion stub is kept).

        Without ``retry``, ``model.rev`` must be the latest: else :class:`Conflict`. With
        ``retry``, a conflict re-reads the current rev (checking it is still a document of
        the model's type) and deletes that, whatever changed since; a document found gone
        by then counts as deleted. Raises :class:`NotFound`, :class:`InvalidInputError` for a
        model without id or rev.
        """
        if model.id is None or model.rev is None:
            raise InvalidInputError("delete_model needs a saved model (with id and rev)")
        rev = model.rev
        policy = retry or ConflictRetry.never()
        attempts = _Attempts(policy)
        while True:
            try:
                await self._raw.delete_doc(model.id, rev)
            except Conflict as exc:
                if not await attempts.another():
                    raise (exc if retry is None else _exhausted(exc, policy)) from None
            else:
                return
            try:
                rev = cast("str", (await self.get(type(model), model.id)).rev)
            except NotFound:
                return

    async def tombstone(self, model: M, *, retry: ConflictRetry | None = None) -> M:
        """Mark ``model``'s document deleted in the never-delete style, keeping it; returns the
        saved model. Queries leave it out unless asked (``include_tombstoned=True``).

        Without ``retry`` this is ``save`` of a copy with ``tombstone=True`` (:class:`Conflict`
        if stale); with ``retry`` it is an :meth:`update` of the current document.
        """
        if retry is None:
            return await self.save(model.model_copy(update={"tombstone": True}))
        if model.id is None:
            raise InvalidInputError("tombstone with retry needs a saved model (with an id)")
        return await self.update(
            type(model), model.id, lambda m: m.model_copy(update={"tombstone": True}), retry=retry
        )

    async def update(
        self,
        model: type[M],
        doc_id: str,
        change: Change[M],
        *,
        retry: ConflictRetry | None = None,
    ) -> M:
        """Read ``doc_id``, apply ``change`` (a function, or coroutine function, from the
        current model to the new one) and save the result; on :class:`Conflict` read and apply
        again, per ``retry`` (``ConflictRetry()`` by default). Returns the saved model.

        ``change`` may run several times: keep it free of other side effects. Raises
        :class:`Conflict` when the retries are used up, :class:`NotFound`, and what
        :meth:`get` and :meth:`save` raise.
        """
        policy = retry if retry is not None else ConflictRetry()
        attempts = _Attempts(policy)
        while True:
            current = await self.get(model, doc_id)
            changed = await _apply(change, current)
            try:
                # The id and rev are the read document's; saving validates the whole model.
                return await self._save_as(changed, id=doc_id, rev=current.rev)
            except Conflict as exc:
                if not await attempts.another():
                    raise _exhausted(exc, policy) from None

    async def save_many(self, models: Sequence[M], *, chunk_size: int = 500) -> list[SaveResult[M]]:
        """Save many models through ``_bulk_docs``, ``chunk_size`` per request; one
        :class:`SaveResult` per model, in order.

        Every model is checked before the first request: one invalid model raises
        :class:`ModelValidationError` (or :class:`NotJSONError`) and nothing is written. Two
        models with the same id raise :class:`InvalidInputError`. Per-document failures (a
        stale rev: :class:`Conflict`) are results, not exceptions; a request that fails as a
        whole raises, leaving earlier chunks written.
        """
        if chunk_size < 1:
            raise InvalidInputError("chunk_size must be at least 1")
        checked = [_checked_doc(model) for model in models]
        ids = [doc["_id"] for doc, _ in checked]
        if len(set(ids)) != len(ids):
            raise InvalidInputError("save_many got two models with the same id")
        results: list[SaveResult[M]] = []
        for start in range(0, len(checked), chunk_size):
            chunk = checked[start : start + chunk_size]
            answers = await self._raw.bulk_docs([doc for doc, _ in chunk])
            for (_, model), answer in zip(chunk, answers, strict=True):
                saved = cast("M", model)
                if answer.error is not None:
                    results.append(SaveResult(saved, answer.error))
                else:
                    results.append(SaveResult(_with_rev(saved, str(answer.rev))))
        return results

    # -- queries -----------------------------------------------------------------------------

    def query(
        self,
        model: type[M],
        /,
        *,
        include_tombstoned: bool = False,
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        **values: Any,
    ) -> AsyncIterator[M]:
        """The models whose fields equal ``values`` (``color="red"``), in id order, through
        the index over exactly those fields (one ``Indexed()`` field, or a compound index
        naming them in any order). Paged: at most ``page_size`` documents held at once.

        Raises :class:`InvalidInputError` (before any request) if no index fits or a value
        does not fit its field; while iterating, what :meth:`get` raises.
        """
        if not values:
            raise InvalidInputError("query needs field=value arguments; all() reads every model")
        index = _index_for_values(model, values)
        key = _index_key(model, index, [values[field] for field in index.fields])
        return self._models(
            model,
            index,
            {"startkey": key, "endkey": key},
            include_tombstoned=include_tombstoned,
            limit=limit,
            page_size=page_size,
        )

    def query_range(
        self,
        model: type[M],
        index: str,
        /,
        *,
        prefix: Sequence[Any] = (),
        start: Any = None,
        end: Any = None,
        inclusive_start: bool = True,
        inclusive_end: bool = True,
        descending: bool = False,
        include_tombstoned: bool = False,
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> AsyncIterator[M]:
        """The models whose key in ``index`` (an index name; an ``Indexed()`` field's index is
        named after the field) lies between ``start`` and ``end``, in key order.

        As in CouchDB, ``start`` is where the walk begins: with ``descending=True`` it is the
        *higher* bound. ``None`` leaves a bound open. For a compound index, ``prefix`` fixes
        the leading fields and ``start``/``end`` bound the next one (or give several values
        as a tuple). An exclusive start is done by skipping rows whose key equals it (no
        ``skip``). Raises what :meth:`query` raises.
        """
        found = _find_index(model, index)
        lead = list(prefix)
        compound = len(found.fields) > 1
        if not compound and lead:
            raise InvalidInputError(f"index {index!r} has one field: it takes no prefix")

        def key(bound: Any, *, past_its_rows: bool) -> tuple[Any, bool]:
            """The view key of a bound, and whether it is partial (fewer values than fields).

            A partial key ``[v]`` sorts before every ``[v, x]``; ``[v, {}]`` sorts after them
            all, so a bound that must take in (or leave out) the rows under it uses that.
            """
            values = [*lead, *(bound if compound and isinstance(bound, tuple) else (bound,))]
            partial = compound and len(values) < len(found.fields)
            view_key = _index_key(model, found, values)
            return ([*view_key, {}] if partial and past_its_rows else view_key), partial

        lead_key = _index_key(model, found, lead) if lead else []
        low_open, high_open = _open_bound(lead_key, compound, descending)
        params: dict[str, Any] = {"descending": descending, "inclusive_end": inclusive_end}
        skip_key: Any = _UNBOUNDED
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
            if start is not None and not inclusive_start and _under(end, start, len(lead), found):
                # The start leaves out every row under it, the end lies among them: nothing
                # is in between (and CouchDB refuses a range whose start is past its end).
                return _no_models()
        for name in ("startkey", "endkey"):
            if params[name] is _UNBOUNDED:
                del params[name]
        return self._models(
            model,
            found,
            params,
            include_tombstoned=include_tombstoned,
            limit=limit,
            page_size=page_size,
            skip_key=skip_key,
        )

    async def most_recent(
        self,
        model: type[M],
        index: str,
        /,
        *,
        prefix: Sequence[Any] = (),
        limit: int = 1,
        include_tombstoned: bool = False,
    ) -> list[M]:
        """The ``limit`` models with the highest keys in ``index`` under ``prefix``, newest
        first: for ``index="fruit_id_updated_on", prefix=("f1",)`` the latest states of
        fruit f1. Reads the view descending from ``[*prefix, {}]`` to ``[*prefix]``.

        Tombstoned documents take part in "most recent": when the newest state is a tombstone,
        it is left out (unless ``include_tombstoned``), not replaced by the older live state.
        """
        if limit < 1:
            raise InvalidInputError("limit must be at least 1")
        found = _find_index(model, index)
        if len(found.fields) == 1 and prefix:
            raise InvalidInputError(f"index {index!r} has one field: it takes no prefix")
        params: dict[str, Any] = {"descending": True}
        if prefix:
            lead = _index_key(model, found, list(prefix))
            params["startkey"], params["endkey"] = [*lead, _HIGH], lead
        rows = self._raw.view(
            *_view_of(model, found), include_docs=True, limit=limit, page_size=limit, **params
        )
        newest: list[M] = []
        async with _closing(rows):
            async for row in rows:
                if row.get("value") is not True or include_tombstoned:
                    newest.append(model.from_doc(row["doc"]))
        return newest

    def all(
        self,
        model: type[M],
        /,
        *,
        descending: bool = False,
        include_tombstoned: bool = False,
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> AsyncIterator[M]:
        """Every model of the type (any version, upgraded on read), in id order: for ids made
        by :func:`new_id`, creation order. Paged through the ``<type>_all`` view."""
        return self._models(
            model,
            None,
            {"descending": descending},
            include_tombstoned=include_tombstoned,
            limit=limit,
            page_size=page_size,
        )

    async def find_models(
        self,
        model: type[M],
        selector: Mapping[str, Any],
        /,
        *,
        include_tombstoned: bool = False,
        sort: Sequence[str | Mapping[str, str]] | None = None,
        limit: int | None = None,
        use_index: str | Sequence[str] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> AsyncIterator[M]:
        """A Mango query (``_find``) for models: ``selector`` combined with the model's type
        (any version) and, unless ``include_tombstoned``, with "not tombstoned".

        Values in ``selector`` are compared with the stored forms: build them with
        :func:`stored_value` (datetimes, decimals, enums). Raises what :meth:`Database.find`
        and :meth:`get` raise.
        """
        info = model.couch_info()
        clauses: list[Mapping[str, Any]] = [
            {"type": {"$regex": f"^{info.type_name}_v[0-9]+\\.[0-9]+$"}},
            selector,
        ]
        if not include_tombstoned:
            clauses.append({"$or": [{"tombstone": {"$exists": False}}, {"tombstone": False}]})
        docs = self._raw.find(
            {"$and": clauses}, sort=sort, limit=limit, use_index=use_index, page_size=page_size
        )
        async with _closing(docs):
            async for doc in docs:
                yield model.from_doc(doc)

    async def _models(
        self,
        model: type[M],
        index: Index | None,
        params: dict[str, Any],
        *,
        include_tombstoned: bool,
        limit: int | None,
        page_size: int,
        skip_key: Any = _UNBOUNDED,
    ) -> AsyncIterator[M]:
        # The limit is counted here, not by the server: skipped rows (tombstones, an exclusive
        # start) must not use it up.
        if limit is not None and limit < 1:
            return
        wanted = page_size if limit is None else max(1, min(page_size, limit))
        rows = self._raw.view(
            *_view_of(model, index), include_docs=True, page_size=wanted, **params
        )
        count = 0
        async with _closing(rows):
            async for row in rows:
                if row.get("value") is True and not include_tombstoned:
                    continue
                if skip_key is not _UNBOUNDED and row.get("key") == skip_key:
                    continue
                yield model.from_doc(row["doc"])
                count += 1
                if limit is not None and count >= limit:
                    return

    # -- design documents --------------------------------------------------------------------

    async def install_views(self, *models: type[Model]) -> list[str]:
        """Put the design documents of ``models`` (:func:`design_docs`), creating the missing
        ones and updating those whose views or language differ; the others are not touched,
        so their indexes are not rebuilt. Returns the ids of the design documents written.
        Raises :class:`ModelDefinitionError` for a wrong set of models.
        """
        written = []
        for doc in design_docs(models):
            if await self._put_design_doc(doc):
                written.append(str(doc["_id"]))
        return written

    async def _put_design_doc(self, doc: dict[str, Any]) -> bool:
        attempts = _Attempts(ConflictRetry.immediate(3))
        while True:
            try:
                current: dict[str, Any] | None = await self._raw.get_doc(doc["_id"])
            except NotFound:
                current = None
            if current is not None and all(current.get(k) == v for k, v in doc.items()):
                return False
            update = dict(doc) if current is None else {**doc, "_rev": current["_rev"]}
            try:
                await self._raw.put_doc(update)
            except Conflict:
                # Another installer got there first: compare with what it wrote.
                if not await attempts.another():
                    raise
            else:
                return True

    # -- migration ---------------------------------------------------------------------------

    async def migrate(
        self,
        model: type[Model],
        *,
        page_size: int = 500,
        progress: Progress | None = None,
        checkpoint_id: str | None = None,
    ) -> MigrationProgress:
        """Rewrite every document of an older version of ``model``'s type at the current
        version (running the upgrade steps), page by page in id order through the ``_all``
        view, saving each page with one ``_bulk_docs``.

        After each page the last id is stored in the ``_local`` document ``checkpoint_id``
        (``_local/migrate_<type_name>`` by default), then ``progress`` is called with the
        counts (it may be a coroutine function). An interrupted migration (an error, a
        cancellation, a ``progress`` that raises) resumes after the last stored page when run
        again; a finished one deletes its checkpoint. A document changed concurrently is read
        and upgraded again. Documents of a newer version are left alone (counted as
        ``newer``). Raises :class:`ModelValidationError` for a document that does not upgrade
        (nothing of its page is written) and what the document API raises.
        """
        info = model.couch_info()
        local_id = checkpoint_id or f"_local/migrate_{info.type_name}"
        checkpoint = await self._read_checkpoint(local_id)
        state = MigrationProgress(
            seen=int(checkpoint.get("seen", 0)),
            upgraded=int(checkpoint.get("upgraded", 0)),
            newer=int(checkpoint.get("newer", 0)),
            last_key=checkpoint.get("last_key"),
        )
        rows = self._migration_pages(model, state.last_key, page_size)
        async with _closing(rows):
            async for page in rows:
                state = await self._migrate_page(model, page, state)
                checkpoint = await self._write_checkpoint(local_id, checkpoint, state)
                await _report(progress, state)
        if "_rev" in checkpoint:
            await self._raw.delete_doc(local_id, checkpoint["_rev"])
        state = MigrationProgress(state.seen, state.upgraded, state.newer, state.last_key, True)
        await _report(progress, state)
        return state

    async def _migration_pages(
        self, model: type[Model], after: str | None, page_size: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        params: dict[str, Any] = {} if after is None else {"startkey": after}
        rows = self._raw.view(*_view_of(model), include_docs=True, page_size=page_size, **params)
        page: list[dict[str, Any]] = []
        async with _closing(rows):
            async for row in rows:
                if row["id"] != after:
                    page.append(row["doc"])
                if len(page) >= page_size:
                    yield page
                    page = []
        if page:
            yield page

    async def _migrate_page(
        self, model: type[Model], page: list[dict[str, Any]], state: MigrationProgress
    ) -> MigrationProgress:
        current = model.couch_info().version
        old, newer = [], 0
        for doc in page:
            version = _doc_version(doc)
            if version is not None and version > current:
                newer += 1
            elif version != current:
                old.append(model.from_doc(doc))  # upgrade all of the page before writing
        upgraded = 0
        for result in await self.save_many(old, chunk_size=max(1, len(old))):
            if result.ok:
                upgraded += 1
            elif isinstance(result.error, Conflict):
                upgraded += await self._upgrade_one(model, cast("str", result.model.id))
            else:
                raise cast("HTTPStatusError", result.error)
        return MigrationProgress(
            seen=state.seen + len(page),
            upgraded=state.upgraded + upgraded,
            newer=state.newer + newer,
            last_key=page[-1]["_id"],
        )

    async def _upgrade_one(self, model: type[Model], doc_id: str) -> int:
        """Upgrade one document changed since its page was read; 1 if this wrote it."""
        attempts = _Attempts(ConflictRetry())
        while True:
            try:
                doc = await self._raw.get_doc(doc_id)
            except NotFound:
                return 0
            if _doc_version(doc) == model.couch_info().version:
                return 0  # whoever changed it wrote the current version
            try:
                await self.save(model.from_doc(doc))
            except Conflict as exc:
                if not await attempts.another():
                    raise _exhausted(exc, ConflictRetry()) from None
            else:
                return 1

    async def _read_checkpoint(self, local_id: str) -> dict[str, Any]:
        try:
            return await self._raw.get_doc(local_id)
        except NotFound:
            return {"_id": local_id}

    async def _write_checkpoint(
        self, local_id: str, previous: dict[str, Any], state: MigrationProgress
    ) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "_id": local_id,
            "last_key": state.last_key,
            "seen": state.seen,
            "upgraded": state.upgraded,
            "newer": state.newer,
        }
        if "_rev" in previous:
            doc["_rev"] = previous["_rev"]
        answer = await self._raw.put_doc(doc)
        return {**doc, "_rev": answer["rev"]}


def _open_bound(lead: list[Any], compound: bool, descending: bool) -> tuple[Any, Any]:
    """The (start, end) keys of an open range: the prefix's edges, or no bound at all."""
    if not compound or not lead:
        return _UNBOUNDED, _UNBOUNDED
    return ([*lead, _HIGH], [*lead]) if descending else ([*lead], [*lead, _HIGH])


@asynccontextmanager
async def _closing(rows: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Close an async generator when the loop over it ends early (a limit, an error), so its
    pending request state is released at once, not when it is garbage-collected."""
    try:
        yield rows
    finally:
        aclose = getattr(rows, "aclose", None)
        if aclose is not None:
            await aclose()


def _doc_version(doc: Mapping[str, Any]) -> tuple[int, int] | None:
    parsed = parse_type(doc.get("type"))
    return None if parsed is None else parsed[1]


async def _report(progress: Progress | None, state: MigrationProgress) -> None:
    if progress is None:
        return
    outcome = progress(state)
    if inspect.isawaitable(outcome):
        await outcome
