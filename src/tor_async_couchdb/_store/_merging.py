"""Mergeable models in the store: sealed on every write, resolved (or reported) on read.

Writing: :meth:`Merging.sealed` is applied to every model the store writes (``save``,
``save_many``, the result of each ``update`` change). For a :class:`~.._merge.Mergeable` with
changes, it returns a sealed copy: registers that changed are stamped with the client's
:class:`~.._merge.HybridClock` (later than every stamp in the document), pending counter and set
changes credited to the clock's node. So ``fruit.eaten.add(3)`` and ``fruit.tags.add("x")``
need nothing more from the caller; the caller's own model is left as it was (a write that
fails and is retried is sealed again, once).

Reading: ``get`` and ``update`` of a mergeable model whose ``read_policy`` is ``"resolve"``
(the default) read the document with ``conflicts=true``; if it has conflicting leaves, every
leaf is read and merged (:func:`~.._merge.resolve_leaves`, the reconciler's own merge) and the
merge is returned with the winner's rev, so a write starts from every leaf's changes and lands
as the winner's child (the reconciler tombstones the other leaves later). Nothing is written
by the read. :func:`conflicts` reports the leaves instead, as a typed :class:`Conflicts`.

Why reads merge the *plain* leaves (decoded by the mapper, signatures checked) and not their
stored form as the reconciler does: a read returns a model, and a model written later is
encoded and signed again by the mapper; byte-identical stored forms only matter for the
reconciler's own writes.

(Below the reconciler in the layer order: this module imports ``_merge``, never
``_reconcile``.)
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .._exceptions import NotFound
from .._merge import BadLeafError, HybridClock, Mergeable, resolve_leaves, seal
from .._merge import is_resolver_tombstone as _is_resolver_tombstone
from .._models import Model

if TYPE_CHECKING:
    from ._database import Database
    from ._mapper import Mapper

__all__ = ["Conflicts", "Merging", "conflicts", "read_model", "resolves_on_read"]

logger = logging.getLogger("tor_async_couchdb.merge")

M = TypeVar("M", bound=Model)


class Merging:
    """What a client's handles need to write mergeable models: the writer's ``clock``.

    Without one, a clock with a random node id is made (per client): correct, but each new
    client adds counter entries and set context to the documents it changes; pass a
    ``HybridClock`` with a node id stable per process slot to bound them (see
    ``docs/multi-master.md``).
    """

    __slots__ = ("_clock",)

    def __init__(self, clock: HybridClock | None = None) -> None:
        self._clock = clock

    def __repr__(self) -> str:
        return f"Merging(clock={self._clock!r})"

    @property
    def clock(self) -> HybridClock:
        """The clock writes are sealed with (made on first use if none was given)."""
        if self._clock is None:
            self._clock = HybridClock(f"auto-{secrets.token_hex(6)}")
        return self._clock

    def sealed(self, model: M) -> M:
        """``model`` ready to write: a sealed copy of a mergeable model with changes, else
        ``model`` itself."""
        if not isinstance(model, Mergeable) or not model.unsealed():
            return model
        copy = model.model_copy(deep=True)
        seal(copy, self.clock)
        return copy

    def all_sealed(self, models: Sequence[M]) -> list[M]:
        """:meth:`sealed` of each of ``models``; with no mergeable model among them (their
        classes checked once each), the models themselves, without a call per model."""
        found = list(models)
        if not any(issubclass(cls, Mergeable) for cls in set(map(type, found))):
            return found
        return [self.sealed(model) for model in found]


@dataclass(frozen=True, slots=True)
class Conflicts(Generic[M]):
    """The leaves of one document, as :func:`conflicts` (``db.conflicts``) reports them.

    ``winner`` is CouchDB's winning revision among the live leaves (``None`` if every leaf is
    deleted); ``leaves`` the live leaves as models (each with its rev), by revision;
    ``deleted`` the revisions of users' deletes among the leaves (resolvers' tombstones are
    history and left out); ``resolved`` the merge as the reconciler will write it, with the
    winner's rev (``None`` when it resolves to deleted, or cannot be merged); ``problem`` why
    it cannot (a :class:`~.._merge.BadLeafError`: a leaf that is invalid, of a newer version,
    tampered, or with unreadable metadata).
    """

    doc_id: str
    winner: str | None
    leaves: tuple[M, ...]
    deleted: tuple[str, ...]
    resolved: M | None
    problem: BadLeafError | None = None

    @property
    def conflicted(self) -> bool:
        """Whether there is anything to merge: more than one leaf that is not history."""
        return len(self.leaves) + len(self.deleted) > 1


def resolves_on_read(model: type[Model]) -> bool:
    """Whether ``get`` of ``model`` merges a conflicted document's leaves."""
    return issubclass(model, Mergeable) and model.read_policy == "resolve"


async def read_model(db: Database, model: type[M], doc_id: str) -> M:
    """``db.get`` of a model that resolves on read: the document, or the merge of its leaves
    if it has conflicts (one ``open_revs=all`` request either way; a conflicted document
    costs nothing more). A document whose leaves cannot be merged is read as CouchDB's winner
    (logged: the reconciler reports it too). Raises what ``get`` raises, and
    :class:`NotFound` for a deleted document, or one whose leaves resolve to deleted (delete
    wins)."""
    found = await conflicts(db, model, doc_id)
    if found.resolved is not None:
        return found.resolved
    if found.problem is not None and found.winner is not None:
        logger.warning("read %s unmerged (CouchDB's winner): %s", doc_id, found.problem)
        return db.mapper.model(model, await db.get_doc(doc_id))
    raise NotFound(
        f"{model.__qualname__} {doc_id!r} is deleted",
        status=404,
        error="not_found",
        reason="deleted",
        doc_id=doc_id,
    )


async def conflicts(db: Database, model: type[M], doc_id: str) -> Conflicts[M]:
    """Every leaf of ``doc_id`` read as ``model`` (through the mapper), and their merge.
    Raises :class:`NotFound` for a document that never existed, and the database's
    errors."""
    answer = await db.get_open_revs(doc_id)
    stored = [item["ok"] for item in answer if isinstance(item.get("ok"), Mapping)]
    if not stored:
        raise NotFound(
            f"no document {doc_id!r}",
            status=404,
            error="not_found",
            reason="missing",
            doc_id=doc_id,
        )
    live = sorted((leaf for leaf in stored if not leaf.get("_deleted")), key=_rev_order)
    deleted = tuple(
        str(leaf["_rev"])
        for leaf in sorted(stored, key=_rev_order)
        if leaf.get("_deleted") and not _is_resolver_tombstone(leaf)
    )
    if len(stored) == 1 and live:  # the usual case: one leaf, nothing to merge
        only = db.mapper.model(model, live[0])
        return Conflicts(doc_id, only.rev, (only,), (), only)
    problem: BadLeafError | None = None
    try:
        plain = [_plain(db.mapper, model, leaf) for leaf in live]
    except Exception as error:  # a document codec refused a leaf: its signature failed
        problem = BadLeafError(
            f"a leaf of {doc_id!r} cannot be decoded: {error}",
            kind="tampered",
            doc_id=doc_id,
            rev=None,
        )
    else:
        deletions = [leaf for leaf in stored if leaf.get("_deleted")]
        try:
            resolution = resolve_leaves(model, [*plain, *deletions])
        except BadLeafError as refused:
            problem = refused
        else:
            resolved = None if resolution.body is None else model.from_doc(resolution.body)
            models = tuple(model.from_doc(leaf) for leaf in plain)
            return Conflicts(doc_id, resolution.winner, models, deleted, resolved)
    readable = _readable(db.mapper, model, live)
    return Conflicts(doc_id, _winner(live), readable, deleted, None, problem)


def _plain(mapper: Mapper, model: type[Model], leaf: Mapping[str, Any]) -> dict[str, Any]:
    # The leaf as the model reads it (decoded, its signature checked), keeping its rev.
    if not mapper.codecs:
        return dict(leaf)
    return {**mapper.decoded(model, leaf), "_id": leaf["_id"], "_rev": leaf["_rev"]}


def _readable(mapper: Mapper, model: type[M], leaves: list[dict[str, Any]]) -> tuple[M, ...]:
    readable: list[M] = []
    for leaf in leaves:
        try:
            readable.append(mapper.model(model, leaf))
        except Exception:  # reported as the problem; the others are still listed
            continue
    return tuple(readable)


def _rev_order(leaf: Mapping[str, Any]) -> tuple[int, str]:
    number, _, rev_id = str(leaf.get("_rev")).partition("-")
    return (int(number) if number.isdigit() else -1, rev_id)


def _winner(live: list[dict[str, Any]]) -> str | None:
    return str(max(live, key=_rev_order)["_rev"]) if live else None
