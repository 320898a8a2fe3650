"""Key rotation through the store: every document of a model re-encrypted and re-signed under
the key ring's active key, page by page, with a checkpoint after each page.

Each page of raw documents (from the model's ``_all`` view, in id order) goes through the
:class:`Rotator` of the handle's codecs: a document already under the active key is left alone
(not written), the others are verified, their encrypted fields decrypted and encrypted again,
signed again, and written together with one ``_bulk_docs``. A document changed since its page
was read (a 409) is read and rotated again, in the one conflict-retry loop
(:func:`retry_conflicts`): whoever changed it may have written it under the active key
already.

The checkpoint is an ordinary document, as for :mod:`._migrate` (a cluster does not keep
``_local`` documents consistent), named after the model's type *and the active key id*
(``tac_checkpoint_rotate_<type name>_to_<key id>``): a run interrupted under one active key
and resumed under another starts again from the beginning, since the pages it finished are
then stale again. A finished run deletes its checkpoint.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._config import ConflictRetry
from .._exceptions import Conflict, MalformedEnvelope, MissingKeyError, NotFound, TamperedDocument
from .._models import Model, parse_type
from .._protect import Encrypted, EncryptedCodec, Rotator, SignatureCodec
from ._mapper import Mapper
from ._migrate import Checkpoint, pages_after
from ._quarantine import QUARANTINED
from ._queries import closing
from ._retry import retry_conflicts

if TYPE_CHECKING:
    from ._database import Database

__all__ = ["RotationProgress", "RotationReport", "rotate", "rotator_of"]


@dataclass(frozen=True, slots=True)
class RotationProgress:
    """Counts reported by :meth:`Database.rotate` after each page (cumulative over runs
    resumed from a checkpoint).

    ``seen``: documents of the type read; ``rotated``: written again under the active key
    ``key_id``; ``skipped``: tampered documents left alone in quarantine mode;
    ``last_key``: the id of the last document done; ``done``: the final report;
    ``tombstones``: deletion stubs of the type re-signed under the active key (in the final
    report only: they are rotated after the last page).
    """

    key_id: str
    seen: int = 0
    rotated: int = 0
    skipped: int = 0
    last_key: str | None = None
    done: bool = False
    tombstones: int = 0


RotationReport = Callable[[RotationProgress], object]
# Counts and logs a tampered document skipped in quarantine mode.
Skip = Callable[[type[Model], TamperedDocument | MalformedEnvelope], None]
# Confirms a write a cluster only accepted (model, id, rev), as every model write is.
Confirm = Callable[[type[Model], str, str], Awaitable[None]]


def rotator_of(mapper: Mapper) -> tuple[Rotator, SignatureCodec]:
    """The :class:`Rotator` of a handle's codecs. Raises :class:`MissingKeyError` when they
    hold no :class:`SignatureCodec` (nothing to rotate without keys)."""
    signature = next((c for c in mapper.codecs if isinstance(c, SignatureCodec)), None)
    if signature is None:
        raise MissingKeyError(
            "rotate needs a store whose codecs sign documents: "
            "tac.CouchDB(url, codecs=tac.Protection.from_keyring(ring))"
        )
    encrypted = next((c for c in mapper.codecs if isinstance(c, EncryptedCodec)), None)
    if encrypted is None:
        return Rotator(signature=signature), signature
    rotator = Rotator(
        signature=signature, cipher=encrypted.cipher, adopt=encrypted.accept_plaintext
    )
    return rotator, signature


@dataclass(frozen=True, slots=True)
class _Job:
    """What every page of one run needs."""

    db: Database
    rotator: Rotator
    type_name: str
    encrypted: dict[str, Encrypted]
    confirm: Confirm

    def rotated(self, doc: dict[str, Any]) -> dict[str, Any] | None:
        return self.rotator.rotate(doc, type_name=self.type_name, encrypted=self.encrypted)


async def rotate(
    db: Database,
    model: type[Model],
    *,
    page_size: int,
    progress: RotationReport | None,
    checkpoint_id: str | None,
    quarantine: Skip | None,
    confirm: Confirm,
) -> RotationProgress:
    """What :meth:`Database.rotate` does (its docstring says how)."""
    rotator, signature = rotator_of(db.mapper)
    key_id = signature.signer.active_key_id
    info = model.couch_info()
    job = _Job(db, rotator, info.type_name, dict(model.field_markers(Encrypted)), confirm)
    checkpoint_id = checkpoint_id or f"tac_checkpoint_rotate_{info.type_name}_to_{key_id}"
    try:
        checkpoint = await db.get(Checkpoint, checkpoint_id)
    except NotFound:
        checkpoint = Checkpoint(id=checkpoint_id)
    state = RotationProgress(
        key_id, checkpoint.seen, checkpoint.upgraded, checkpoint.newer, checkpoint.last_key
    )
    pages = pages_after(db, model, state.last_key, page_size)
    async with closing(pages):
        async for page in pages:
            state = await _rotate_page(job, model, page, state, quarantine)
            update = {"last_key": state.last_key, "seen": state.seen}
            update |= {"upgraded": state.rotated, "newer": state.skipped}
            checkpoint = await db.save(checkpoint.model_copy(update=update))
            await _report(progress, state)
    tombstones, skipped = await _rotate_tombstones(job, model, page_size, quarantine)
    if checkpoint.rev is not None:
        await db.delete(checkpoint)
    final = RotationProgress(
        key_id,
        state.seen,
        state.rotated,
        state.skipped + skipped,
        state.last_key,
        done=True,
        tombstones=tombstones,
    )
    await _report(progress, final)
    return final


async def _rotate_page(
    job: _Job,
    model: type[Model],
    page: list[dict[str, Any]],
    state: RotationProgress,
    quarantine: Skip | None,
) -> RotationProgress:
    # Every document of the page is rotated (verified) before any is written.
    fresh: list[dict[str, Any]] = []
    skipped = 0
    for doc in page:
        try:
            rotated = job.rotated(doc)
        except QUARANTINED as error:
            if quarantine is None:
                raise
            quarantine(model, error)
            skipped += 1
            continue
        if rotated is not None:
            fresh.append(rotated)
    written = 0
    for doc, answer in zip(fresh, await job.db.bulk_docs(fresh) if fresh else [], strict=True):
        if answer.error is None:
            written += await _confirmed(job, model, answer.id, str(answer.rev), answer.accepted)
        elif isinstance(answer.error, Conflict):
            written += await _rotate_one(job, model, str(doc["_id"]))
        else:
            raise answer.error
    return RotationProgress(
        state.key_id,
        seen=state.seen + len(page),
        rotated=state.rotated + written,
        skipped=state.skipped + skipped,
        last_key=str(page[-1]["_id"]),
    )


async def _rotate_tombstones(
    job: _Job, model: type[Model], page_size: int, quarantine: Skip | None
) -> tuple[int, int]:
    """Re-sign the type's deletion stubs (the signed ones the mapper writes, which carry their
    ``type``): (re-signed, skipped as tampered). They are in no view, so ``_changes`` lists
    them, a page at a time; each stale one is verified, signed again and written as the next
    deleted revision (still a deletion). A stub under the active key already is not written,
    so a run started again after an interruption writes only what is left."""
    since: str | int = 0
    written = skipped = 0
    while True:
        changes, last_seq = await job.db.changes(since=since, limit=page_size, include_docs=True)
        stubs = [c["doc"] for c in changes if c.get("deleted") and _is_stub_of(job, c.get("doc"))]
        fresh: list[dict[str, Any]] = []
        for stub in stubs:
            try:
                rotated = job.rotated(stub)
            except QUARANTINED as error:
                if quarantine is None:
                    raise
                quarantine(model, error)
                skipped += 1
                continue
            if rotated is not None:
                fresh.append(rotated)
        for answer in await job.db.bulk_docs(fresh) if fresh else []:
            if answer.error is None:
                written += 1
            elif not isinstance(answer.error, Conflict):  # (a 409: written again meanwhile)
                raise answer.error
        if len(changes) < page_size:
            return written, skipped
        since = last_seq


def _is_stub_of(job: _Job, doc: object) -> bool:
    if not isinstance(doc, dict) or doc.get("_deleted") is not True:
        return False
    parsed = parse_type(doc.get("type"))
    return parsed is not None and parsed[0] == job.type_name


async def _confirmed(job: _Job, model: type[Model], doc_id: str, rev: str, accepted: bool) -> int:
    if accepted:  # a cluster took it without its quorum: confirm it as any model write
        await job.confirm(model, doc_id, rev)
    return 1


async def _rotate_one(job: _Job, model: type[Model], doc_id: str) -> int:
    """Rotate one document changed since its page was read; 1 if this wrote it."""

    async def attempt(_: int) -> int:
        try:
            doc = await job.db.get_doc(doc_id)
        except NotFound:
            return 0
        rotated = job.rotated(doc)
        if rotated is None:
            return 0  # whoever changed it wrote it under the active key
        answer = await job.db.put_doc(rotated)
        return await _confirmed(
            job, model, doc_id, str(answer["rev"]), bool(answer.get("accepted"))
        )

    return await retry_conflicts(ConflictRetry(), attempt)


async def _report(progress: RotationReport | None, state: RotationProgress) -> None:
    if progress is None:
        return
    outcome = progress(state)
    if inspect.isawaitable(outcome):
        await outcome
