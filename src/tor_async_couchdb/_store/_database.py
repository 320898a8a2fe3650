"""The store's database handle: persistence of models on top of the raw document API.

``Database`` extends the raw :class:`tor_async_couchdb._couch.Database` (documents, views,
changes in plain JSON) with the methods that speak in models (``db.save(fruit)``,
``db.query(Fruit, color="red")``). Every model read and write goes through the handle's
:class:`~._mapper.Mapper`, the one place documents become models and back (and where codecs
run); conflicts are retried by the one loop of :mod:`._retry`.

Deleting: :meth:`Database.delete` removes a model's document (CouchDB's own delete);
:meth:`Database.tombstone` is the never-delete style, which keeps the document and flags it,
and every query leaves tombstoned documents out unless ``include_tombstoned=True``. The
database itself is dropped by :meth:`~tor_async_couchdb._couch.Database.delete_database`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from .._config import DEFAULT_PAGE_SIZE, ConflictRetry
from .._couch import BulkResult
from .._couch import Database as RawDatabase
from .._exceptions import (
    BulkWriteError,
    HTTPStatusError,
    InvalidInputError,
    NotFound,
    TransportError,
    WriteNotConfirmed,
)
from .._models import Index, Model, design_docs
from ._build import ViewProgress, build_views, put_design_doc
from ._hot import Batch, HotDocuments
from ._mapper import Mapper, checked_doc, checked_docs, with_rev, with_revs
from ._merging import Conflicts, conflicts, read_model, resolves_on_read
from ._migrate import MigrationProgress, Progress, migrate
from ._quarantine import QUARANTINED, Quarantine
from ._queries import (
    UNBOUNDED,
    check_range_index,
    closing,
    find_index,
    index_for_values,
    lookup_params,
    models_selector,
    no_models,
    page_docs,
    range_params,
    recent_params,
    view_of,
)
from ._quorum import confirm_write, current_settled
from ._results import SaveResult
from ._retry import retry_conflicts
from ._rotate import RotationProgress, RotationReport, rotate

if TYPE_CHECKING:
    from .._couch import CouchDB as RawCouchDB

__all__ = ["Change", "Database", "SaveResult"]

M = TypeVar("M", bound=Model)
Change = Callable[[M], M | Awaitable[M]]


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


def _part_way(
    results: list[SaveResult[M]],
    chunk: Sequence[tuple[Any, M]],
    rest: Sequence[tuple[Any, M]],
    error: Exception,
) -> BulkWriteError:
    """The error of a ``save_many`` whose chunk ``chunk`` failed as a whole: the models keep
    the ids they were sent with, so that saving them again cannot duplicate one."""
    unknown = [model for _, model in chunk]
    unsent = [model for _, model in rest]
    return BulkWriteError(
        f"save_many failed part-way: {len(results)} results known, {len(unknown)} models "
        f"of unknown outcome, {len(unsent)} not sent ({error})",
        results=results,
        unknown=unknown,
        unsent=unsent,
    )


def _all_committed(
    chunk: Sequence[tuple[Any, M]], answers: Sequence[BulkResult]
) -> list[SaveResult[M]] | None:
    """The results of a ``save_many`` chunk whose every write was committed (the usual
    answer), or None. Checked and set a column at a time, in C."""
    if not answers or set(map(_error_of, answers)) != {None} or any(map(_accepted_of, answers)):
        return None
    revs = list(map(_rev_of, answers))
    if set(map(type, revs)) != {str}:
        return None
    saved = list(map(_model_of, chunk))
    with_revs(saved, revs)
    return list(map(SaveResult, saved))


def _tombstoned(model: M) -> M:
    return model.model_copy(update={"tombstone": True})


def _missing(model: type[Model], row: Mapping[str, Any]) -> NotFound:
    """The error of a ``get_many`` id whose ``_all_docs`` row has no document."""
    return NotFound(
        f"no {model.__qualname__} document {row.get('key')!r}",
        status=404,
        error=str(row.get("error") or "not_found"),
        reason="deleted" if row.get("value") else "missing",
        doc_id=row.get("key"),
    )


# A BulkResult's rev, error and accepted; the model of a (document, model) pair.
_rev_of, _error_of, _accepted_of = itemgetter(1), itemgetter(2), itemgetter(3)
_model_of = itemgetter(1)


class Database(RawDatabase):
    """A handle of one database, with models: the raw document API of
    :class:`tor_async_couchdb._couch.Database` (``get_doc``, ``put_doc``, ``view``...) plus
    persistence of models (``save``, ``get``, ``query``...). Made by ``couch.database(name)``.

    Every model read and write goes through the handle's :class:`Mapper` and its codecs.
    """

    __slots__ = ("_copies", "_hot", "_mapper", "_quarantine")

    def __init__(
        self,
        couch: RawCouchDB,
        name: str,
        *,
        mapper: Mapper | None = None,
        copies: dict[str, int] | None = None,
        hot: HotDocuments | None = None,
        quarantine: Quarantine | None = None,
    ) -> None:
        super().__init__(couch, name)
        self._quarantine = quarantine  # set: collection reads skip tampered documents
        self._mapper = mapper if mapper is not None else Mapper()
        # The number of copies of each database of the client (its ``n``): shared by the
        # handles of one client, so that it is asked once.
        self._copies = copies if copies is not None else {}
        # The update queues of hot documents: shared by the handles of one client too, so
        # that every updater of a document in this process joins one queue.
        self._hot = hot if hot is not None else HotDocuments()

    @property
    def mapper(self) -> Mapper:
        """The mapper (and its codecs) every model read and write goes through."""
        return self._mapper

    @property
    def quarantine(self) -> bool:
        """Whether collection reads skip tampered documents (logged at ERROR and counted in
        ``couch.stats().quarantined``) instead of raising :class:`TamperedDocument`."""
        return self._quarantine is not None

    def _listed(self, model: type[M], doc: Mapping[str, Any]) -> M | None:
        """:meth:`Mapper.model` for a collection read: ``None`` for a tampered document in
        quarantine mode (see :mod:`._quarantine`)."""
        try:
            return self._mapper.model(model, doc)
        except QUARANTINED as error:
            if self._quarantine is None:
                raise
            self._quarantine.skip(model, self.name, error)
            return None

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
        model = self._mapper.merging.sealed(model)
        if self.name not in self._copies:
            checked_doc(model, **overrides)  # bad input fails before the first request
        copies = await self.copies()
        doc, checked = await self._mapper.document(model, overrides, stamp=copies > 1)
        rev = await self._put_confirmed(type(model), doc, copies)
        return with_rev(checked, rev)

    async def copies(self) -> int:
        """How many copies a cluster keeps of each document of this database (its ``n``; 1
        for a single node or a server that does not say). Asked once per client and name."""
        known = self._copies.get(self.name)
        if known is None:
            cluster = (await self.info()).get("cluster")
            n = cluster.get("n") if isinstance(cluster, dict) else None
            known = self._copies[self.name] = n if isinstance(n, int) and n > 0 else 1
        return known

    async def _put_confirmed(self, model: type[Model], doc: dict[str, Any], copies: int) -> str:
        """Write ``doc`` and return its rev once the write holds: at once when the quorum
        took it (201), after :func:`confirm_write` when a cluster only accepted it (202).
        Raises :class:`WriteNotConfirmed` (a :class:`Conflict`) for a write that gave way."""
        answer = await self.put_doc(doc)
        rev = str(answer["rev"])
        if answer.get("accepted"):
            await self._confirm(model, str(doc["_id"]), rev, copies)
        return rev

    async def _confirm(self, model: type[Model], doc_id: str, rev: str, copies: int) -> None:
        withdraw = functools.partial(self._mapper.deletion, model, doc_id)
        await confirm_write(self, doc_id, rev, copies=copies, withdraw=withdraw)

    async def _current(self, model: type[M], doc_id: str) -> M:
        """:meth:`get` for an update: on a cluster, leftover siblings are settled first."""
        copies = await self.copies()
        if copies == 1 or resolves_on_read(model):  # (a merge keeps every sibling's changes)
            return await self.get(model, doc_id)
        withdraw = functools.partial(self._mapper.deletion, model, doc_id)
        doc = await current_settled(self, doc_id, copies=copies, withdraw=withdraw)
        return self._mapper.model(model, doc)

    async def get(self, model: type[M], doc_id: str) -> M:
        """Read document ``doc_id`` as ``model``, upgrading an older version.

        Raises :class:`NotFound`, :class:`WrongTypeError` (another model's document, or a newer
        version) and :class:`ModelValidationError` (stored values that do not fit). A
        tombstoned document is returned (its ``tombstone`` is true). A conflicted document
        of a mergeable model is read as the merge of its leaves, unless its ``read_policy`` is
        ``"winner"`` (see :meth:`conflicts`).
        """
        if resolves_on_read(model):
            return await read_model(self, model, doc_id)
        return self._mapper.model(model, await self.get_doc(doc_id))

    async def conflicts(self, model: type[M], doc_id: str) -> Conflicts[M]:
        """Every leaf of document ``doc_id`` as ``model`` (a mergeable one, for ``resolved``),
        and their merge: :class:`Conflicts`. Nothing is written. Raises :class:`NotFound`."""
        return await conflicts(self, model, doc_id)

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
        rows = self.all_docs(keys=list(ids), include_docs=True, page_size=page_size)
        async with closing(rows):
            async for row in rows:
                doc = row.get("doc")
                if doc is not None:
                    if (found := self._listed(model, doc)) is not None:
                        yield found
                elif missing == "raise":
                    raise _missing(model, row)

    async def delete(self, model: Model, *, retry: ConflictRetry | None = None) -> None:
        """Delete the document of ``model`` (a CouchDB delete: only a deletion stub is kept).

        Without ``retry``, ``model.rev`` must be the latest: else :class:`Conflict`. With
        ``retry``, a conflict re-reads the current rev (checking it is still a document of
        the model's type) and deletes that, whatever changed since; a document found gone
        by then counts as deleted. Raises :class:`NotFound`, :class:`InvalidInputError` for a
        model without id or rev. The deletion is written through the mapper (with the
        model's ``type``, and signed where a document codec signs), so it cannot be told apart
        from one written by another application tier. (The database itself is dropped by
        :meth:`delete_database`.)
        """
        doc_id, rev = model.id, model.rev
        if doc_id is None or rev is None:
            raise InvalidInputError("delete needs a saved model (with id and rev)")

        async def attempt(number: int) -> None:
            current = rev
            if number:
                try:
                    current = cast("str", (await self._current(type(model), doc_id)).rev)
                except NotFound:
                    return
            deletion = self._mapper.deletion(type(model), doc_id, current)
            await self._put_confirmed(type(model), deletion, await self.copies())

        policy = retry if retry is not None else ConflictRetry.never()
        await retry_conflicts(policy, attempt, note=retry is not None)

    async def tombstone(self, model: M, *, retry: ConflictRetry | None = None) -> M:
        """Mark ``model``'s document deleted in the never-delete style, keeping it; returns the
        saved model. Queries leave it out unless asked (``include_tombstoned=True``).

        Without ``retry`` this is ``save`` of a copy with ``tombstone=True`` (:class:`Conflict`
        if stale); with ``retry`` it is an :meth:`update` of the current document.
        """
        if retry is None:
            return await self.save(_tombstoned(model))
        if model.id is None:
            raise InvalidInputError("tombstone with retry needs a saved model (with an id)")
        return await self.update(type(model), model.id, _tombstoned, retry=retry)

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
        again, per ``retry`` (``ConflictRetry()`` by default: backoff with jitter). Returns the
        saved model.

        Concurrent updates of one document through one client are coalesced (a hot
        document): their changes queue on the document and are applied in order to one read,
        then written once (:mod:`._hot`). The model returned is then the one the batch saved:
        it holds this change and those of the updaters queued after it, and its rev is the
        document's. A change that raises fails only its own caller.

        ``change`` may run several times: keep it free of other side effects. Raises
        :class:`Conflict` when the retries are used up, :class:`NotFound`, and what
        :meth:`get` and :meth:`save` raise.
        """
        policy = retry if retry is not None else ConflictRetry()

        async def applied(current: Any) -> Any:
            return self._mapper.merging.sealed(await _apply(change, current))

        async def run(batch: Batch) -> Model | None:
            return await self._update_batch(model, doc_id, batch, policy)

        saved = await self._hot.update(
            (self.name, doc_id), (self._mapper, model, policy), applied, run
        )
        return cast("M", saved)

    async def _update_batch(
        self, model: type[M], doc_id: str, batch: Batch, policy: ConflictRetry
    ) -> M | None:
        """One read and one write of the changes of ``batch`` (None if every change failed),
        retried as a whole on :class:`Conflict`."""

        async def attempt(_: int) -> M | None:
            current = await self._current(model, doc_id)

            def check(changed: Model) -> Model:
                # Each change is checked on its own, so that a bad one fails its own caller.
                return checked_doc(changed, id=doc_id, rev=current.rev)[1]

            changed = await batch.apply(current, check)
            if changed is None:
                return None
            # The id and rev are the read document's; saving validates the whole model.
            return await self._save_as(cast("M", changed), id=doc_id, rev=current.rev)

        return await retry_conflicts(policy, attempt)

    async def save_many(self, models: Sequence[M], *, chunk_size: int = 500) -> list[SaveResult[M]]:
        """Save many models through ``_bulk_docs``, ``chunk_size`` per request; one
        :class:`SaveResult` per model, in order.

        Every model is checked before the first request: one invalid model raises
        :class:`ModelValidationError` (or :class:`NotJSONError`) and nothing is written. Two
        models with the same id raise :class:`InvalidInputError`. Per-document failures (a
        stale rev: :class:`Conflict`) are results, not exceptions; a request that fails as a
        whole (the server died part-way) raises :class:`BulkWriteError`, which says what was
        saved, what is unknown and what was not sent (saving those again is safe: see there).
        """
        if chunk_size < 1:
            raise InvalidInputError("chunk_size must be at least 1")
        models = self._mapper.merging.all_sealed(models)
        if models and self.name not in self._copies:
            checked_docs(models)  # bad input fails before the first request
        copies = await self.copies() if models else 1
        checked = await self._mapper.documents(models, stamp=copies > 1)
        ids = [doc["_id"] for doc, _ in checked]
        if len(set(ids)) != len(ids):
            raise InvalidInputError("save_many got two models with the same id")
        results: list[SaveResult[M]] = []
        for start in range(0, len(checked), chunk_size):
            chunk = checked[start : start + chunk_size]
            try:
                answers = await self.bulk_docs([doc for doc, _ in chunk])
                chunk_results = _all_committed(chunk, answers) or [
                    await self._bulk_saved(saved, answer, copies)
                    for (_, saved), answer in zip(chunk, answers, strict=True)
                ]
            except (TransportError, HTTPStatusError) as error:
                raise _part_way(results, chunk, checked[start + chunk_size :], error) from error
            results.extend(chunk_results)
        return results

    async def _bulk_saved(self, saved: M, answer: BulkResult, copies: int) -> SaveResult[M]:
        """The result of one model of ``save_many``: a write the cluster only accepted is
        confirmed first (as for :meth:`save`)."""
        if answer.error is not None:
            return SaveResult(saved, answer.error)
        rev = str(answer.rev)
        if answer.accepted:
            try:
                await self._confirm(type(saved), answer.id, rev, copies)
            except WriteNotConfirmed as error:
                return SaveResult(saved, error)
        return SaveResult(with_rev(saved, rev))

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
        index = index_for_values(model, values)
        params = lookup_params(self._mapper, model, index, values)
        return self._models(
            model,
            index,
            params,
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
        found = find_index(model, index)
        check_range_index(self._mapper, model, found)
        bounds = range_params(
            model,
            found,
            prefix=prefix,
            start=start,
            end=end,
            inclusive_start=inclusive_start,
            inclusive_end=inclusive_end,
            descending=descending,
        )
        if bounds is None:
            return no_models()
        params, skip_key = bounds
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
        found = find_index(model, index)
        check_range_index(self._mapper, model, found)
        params = recent_params(model, found, prefix)
        rows = self.view(
            *view_of(model, found), include_docs=True, limit=limit, page_size=limit, **params
        )
        newest: list[M] = []
        async with closing(rows):
            async for row in rows:
                doc = row.get("doc")
                if doc is None:
                    continue  # deleted while the view was read (its row outlived it)
                if row.get("value") is True and not include_tombstoned:
                    continue
                if (listed := self._listed(model, doc)) is not None:
                    newest.append(listed)
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
        docs = self.find(
            models_selector(model, selector, include_tombstoned=include_tombstoned),
            sort=sort,
            limit=limit,
            use_index=use_index,
            page_size=page_size,
        )
        async with closing(docs):
            async for doc in docs:
                if (found := self._listed(model, doc)) is not None:
                    yield found

    async def _models(
        self,
        model: type[M],
        index: Index | None,
        params: dict[str, Any],
        *,
        include_tombstoned: bool,
        limit: int | None,
        page_size: int,
        skip_key: Any = UNBOUNDED,
    ) -> AsyncIterator[M]:
        # The limit is counted here, not by the server: skipped rows (tombstones, an exclusive
        # start) must not use it up.
        if limit is not None and limit < 1:
            return
        wanted = page_size if limit is None else max(1, min(page_size, limit))
        pages = self.view_pages(
            *view_of(model, index), include_docs=True, page_size=wanted, **params
        )
        count = 0
        async with closing(pages):
            async for page in pages:
                docs = page_docs(page, include_tombstoned=include_tombstoned, skip_key=skip_key)
                # A page's models in one validation; else (a document that fails, an older
                # version, codecs, quarantine mode) one at a time, lazily, so that the models
                # before a bad document are still yielded before its error.
                built = (
                    None if self._quarantine is not None else self._mapper.page_models(model, docs)
                )
                listed = built if built is not None else (self._listed(model, d) for d in docs)
                for found in listed:
                    if found is not None:  # (None: quarantined, not counted against the limit)
                        yield found
                        count += 1
                        if count == limit:
                            return

    # -- design documents --------------------------------------------------------------------

    async def install_views(
        self,
        *models: type[Model],
        build: bool = False,
        progress: ViewProgress | None = None,
    ) -> list[str]:
        """Put the design documents of ``models`` (:func:`design_docs`), creating the missing
        ones and updating those whose views or language differ; the others are not touched,
        so their indexes are not rebuilt. Returns the ids of the design documents written.

        With ``build``, the views of the design documents written are queried once each
        before returning, so that their indexes are built now and not in the first query of a
        user (which then answers at once, also with ``update="false"``); ``progress`` (a
        function or coroutine function) is called with a :class:`BuildProgress` after each
        view. Raises :class:`ModelDefinitionError` for a wrong set of models.
        """
        written = [doc for doc in design_docs(models) if await put_design_doc(self, doc)]
        if build:
            await build_views(self, written, progress)
        return [str(doc["_id"]) for doc in written]

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

        After each page the last id is stored in the checkpoint document ``checkpoint_id``
        (an ordinary document, ``tac_checkpoint_migrate_<type_name>`` by default, of type
        ``tac_checkpoint``: a cluster does not keep ``_local`` documents consistent), then
        ``progress`` is called with the counts (it may be a coroutine function). An
        interrupted migration (an error, a cancellation, a ``progress`` that raises) resumes
        after the last stored page when run again; a finished one deletes its checkpoint. A
        document changed concurrently is read and upgraded again. Documents of a newer version
        are left alone (counted as ``newer``). Raises :class:`ModelValidationError` for a
        document that does not upgrade (nothing of its page is written) and what the document
        API raises.
        """
        return await migrate(
            self,
            self,
            self._mapper,
            model,
            page_size=page_size,
            progress=progress,
            checkpoint_id=checkpoint_id,
        )

    # -- key rotation ------------------------------------------------------------------------

    async def rotate(
        self,
        model: type[Model],
        *,
        page_size: int = 500,
        progress: RotationReport | None = None,
        checkpoint_id: str | None = None,
    ) -> RotationProgress:
        """Re-encrypt and re-sign every document of ``model``'s type under the active key of
        the handle's key ring, page by page in id order through the ``_all`` view, writing
        each page's stale documents with one ``_bulk_docs`` (documents already under the
        active key are not written).

        After each page the last id is stored in the checkpoint document ``checkpoint_id``
        (``tac_checkpoint_rotate_<type_name>_to_<active key id>`` by default), then
        ``progress`` (a function or coroutine function) is called with a
        :class:`RotationProgress`. An interrupted rotation (an error, a cancellation, a
        ``progress`` that raises) resumes after the last stored page when run again; a finished
        one deletes its checkpoint and reports ``done``. A document changed concurrently is
        read and rotated again (:func:`retry_conflicts`). Hashed fields are left alone.

        Raises :class:`MissingKeyError` when the handle's codecs do not sign; for a stored
        document, what a read raises (:class:`TamperedDocument`, :class:`RetiredKeyError` for
        a key retired too early, :class:`UnknownKeyError`), before anything of its page is
        written; in quarantine mode tampered documents are skipped (counted in ``skipped``).
        """
        return await rotate(
            self,
            model,
            page_size=page_size,
            progress=progress,
            checkpoint_id=checkpoint_id,
            quarantine=None if self._quarantine is None else self._quarantine.skipper(self.name),
            confirm=functools.partial(self._confirm, copies=await self.copies()),
        )
