"""What the fruit store does, independent of HTTP: one coroutine method per action."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import tor_async_couchdb as tac

from .combiner import Combiner
from .merging import LeafHooks, sealed
from .models import Fruit, FruitChange, NewFruit

# Merges of a conflicted fruit tried before an update backs off and reads it again.
_MERGE_ATTEMPTS = 5
# At most this many fruits per page; a bigger ``limit`` is an error, not silently cut.
MAX_PAGE = 100


class RevisionCondition(Protocol):
    """An ``If-Match`` condition (``tor_async_couchdb.tornado.IfMatch`` is one)."""

    def matches(self, rev: str | None) -> bool: ...


class OwnerTokenError(Exception):
    """The owner token for a delete is missing (``missing``) or wrong."""

    def __init__(self, *, missing: bool) -> None:
        super().__init__("owner token missing" if missing else "owner token does not match")
        self.missing = missing


class StaleRevision(Exception):
    """An ``If-Match`` revision is not the fruit's current one: the change was not made."""


class BadCursor(ValueError):
    """A list cursor this service did not make (or made for another colour)."""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list, and the cursor of the next one (``None`` after the last)."""

    fruits: list[Fruit]
    cursor: str | None


@dataclass(frozen=True, slots=True)
class Saved:
    """A fruit as an update saved it, and the conflicts retried to save it (for the whole
    batch of combined changes the update was written in)."""

    fruit: Fruit
    conflicts_retried: int


def check_fruit_id(fruit_id: str) -> str:
    """``fruit_id`` if it is an id this service makes; :class:`tac.InvalidNameError` if not."""
    tac.id_timestamp(fruit_id)  # 32 lower-case hex digits, as tac.new_id() makes them
    return fruit_id


class FruitStore:
    """The fruit store's actions over one database (a handle with the protection codecs).

    ``clock`` stamps this instance's writes (its node id must be unique among the instances
    writing at once); ``hooks`` check, read and sign leaves when a conflicted fruit is merged
    before a change; ``on_conflicts_retried(n)`` is told how many conflicts an update retried,
    ``on_merged()`` each merge it had to write first (for metrics).
    """

    def __init__(
        self,
        db: tac.Database,
        *,
        clock: tac.HybridClock,
        hooks: LeafHooks,
        on_conflicts_retried: Callable[[int], None],
        on_merged: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.hooks = hooks
        self._on_conflicts_retried = on_conflicts_retried
        self._on_merged = on_merged
        self._retry = tac.ConflictRetry(attempts=50, backoff=0.005, max_backoff=0.2)
        self._combiner: Combiner[Fruit, Saved] = Combiner(self._update)

    async def create(self, new: NewFruit) -> tuple[Fruit, str]:
        """Save a new fruit; returns it and its owner token (shown once, stored hashed)."""
        token = secrets.token_urlsafe(24)
        now = datetime.now(UTC)
        fruit_id = tac.new_id()
        fruit = Fruit(
            id=fruit_id,
            fruit_id=fruit_id,
            color=new.color,
            note=new.note,  # encrypted by the client's codec
            owner_token=tac.HashedSecret.new(token),  # hashed (argon2id, in a thread)
            created_on=now,
            updated_on=now,
        )
        return await self.db.save(sealed(fruit, self.clock)), token

    async def get(self, fruit_id: str) -> Fruit:
        """The fruit; :class:`tac.NotFound` if there is none."""
        return await self.db.get(Fruit, check_fruit_id(fruit_id))

    async def page(self, *, limit: int, cursor: str | None, color: str | None) -> Page:
        """A page of fruits in creation order, all or of one colour, after ``cursor``."""
        after = _read_cursor(cursor, color) if cursor is not None else None
        fruits = await self._listed(color, after, limit + 1)
        if len(fruits) <= limit:
            return Page(fruits, None)
        return Page(fruits[:limit], _make_cursor(fruits[limit - 1].fruit_id, color))

    async def _listed(self, color: str | None, after: str | None, wanted: int) -> list[Fruit]:
        """Up to ``wanted`` fruits after ``after`` in fruit-id order (of one colour: through
        the ``color_fruit_id`` index). A fruit whose colour changed while the index was read
        comes with its new colour and is left out."""
        index = "fruit_id" if color is None else "color_fruit_id"
        prefix = () if color is None else (color,)
        listed = self.db.query_range(
            Fruit, index, prefix=prefix, start=after, inclusive_start=False, page_size=wanted + 1
        )
        fruits: list[Fruit] = []
        try:
            async for fruit in listed:
                if color is None or fruit.color == color:
                    fruits.append(fruit)
                if len(fruits) == wanted:
                    break
        finally:
            close = getattr(listed, "aclose", None)  # leaving early: release the request now
            if close is not None:
                await close()
        return fruits

    async def change(
        self, fruit_id: str, change: FruitChange, *, if_match: RevisionCondition | None
    ) -> Fruit:
        """Set the colour (and note); with ``if_match``, only if the fruit is still at a
        revision it matches (:class:`StaleRevision` otherwise: never retried); without, a
        conflict is retried on the fruit as it is then."""

        def changed(fruit: Fruit) -> Fruit:
            values: dict[str, Any] = {"color": change.color, "updated_on": datetime.now(UTC)}
            if "note" in change.model_fields_set:
                values["note"] = change.note
            return fruit.model_copy(update=values)

        if if_match is None:
            return (await self._combiner.apply(check_fruit_id(fruit_id), changed)).fruit
        current = await self.get(fruit_id)
        if not if_match.matches(current.rev):
            raise StaleRevision(fruit_id)
        try:
            return await self.db.save(sealed(changed(current), self.clock))
        except tac.Conflict:
            raise StaleRevision(fruit_id) from None

    async def eat(self, fruit_id: str, by: str) -> Saved:
        """Count one eating by ``by`` (once per eater) and add the eater to the set."""

        def eaten(fruit: Fruit) -> Fruit:
            if by in fruit.eaten_by:  # a repeated request (say, after a lost answer)
                return fruit
            fruit.eaten.add(1)  # a counter and a set: merged, never overwritten
            fruit.eaten_by.add(by)
            return fruit.model_copy(update={"updated_on": datetime.now(UTC)})

        return await self._combiner.apply(check_fruit_id(fruit_id), eaten)

    async def delete(
        self, fruit_id: str, *, owner_token: str | None, if_match: RevisionCondition | None
    ) -> None:
        """Delete the fruit if ``owner_token`` is its owner's (:class:`OwnerTokenError`);
        with an ``If-Match``, only at that revision (:class:`StaleRevision`)."""
        current = await self.get(fruit_id)
        if owner_token is None:
            raise OwnerTokenError(missing=True)
        if not await current.owner_token.verify(owner_token):  # argon2id, in a thread
            raise OwnerTokenError(missing=False)
        if if_match is not None and not if_match.matches(current.rev):
            raise StaleRevision(fruit_id)
        try:
            await self._delete(current, retry=if_match is None)
        except tac.Conflict:
            raise StaleRevision(fruit_id) from None

    async def _delete(self, fruit: Fruit, *, retry: bool) -> None:
        # The one call of the library's delete (to be renamed db.delete(model) at merge).
        await self.db.delete(fruit, retry=self._retry if retry else None)

    async def _update(self, fruit_id: str, change: Callable[[Fruit], Fruit]) -> Saved:
        """Read, change, seal and write the fruit, retrying conflicts (the combiner's writer).

        Not ``db.update``: a fruit that replication left conflicted is merged first
        (``tac.resolve_document``), because a change written on the winning leaf alone could
        set this instance's counter entry back to an older branch's, losing an increment.
        """
        retried = 0
        try:
            for attempt in range(1, self._retry.attempts + 1):
                try:
                    fruit = await self._merged(fruit_id)
                    saved = await self.db.save(sealed(change(fruit), self.clock))
                except tac.Conflict:  # a write in between, or a fruit that stays conflicted
                    if attempt == self._retry.attempts:
                        raise
                    retried += 1
                    await asyncio.sleep(self._retry.delay(attempt))
                    continue
                return Saved(saved, retried)
            raise AssertionError("unreachable: the last attempt returns or raises")
        finally:
            if retried:
                self._on_conflicts_retried(retried)

    async def _merged(self, fruit_id: str) -> Fruit:
        """The fruit with a single live leaf: merged first (and read again) while it has more.

        Never the winning leaf of a conflicted fruit: a resolution that raced another writer
        may leave the leaves apart, and a change written on a branch without this instance's
        latest write would reuse its counter entries and set tags (an unmergeable fruit).
        """
        checked_id = check_fruit_id(fruit_id)
        for _ in range(_MERGE_ATTEMPTS):
            doc = await self.db.get_doc(checked_id, conflicts=True)
            if "_conflicts" not in doc:
                return self.db.mapper.model(Fruit, doc)
            await tac.resolve_document(self.db, checked_id, Fruit, hooks=self.hooks)
            self._on_merged()
        # Raised as a conflict: the update's retry loop reads again after a backoff.
        raise tac.Conflict(f"fruit {checked_id!r} stays conflicted", status=409, doc_id=checked_id)


def _make_cursor(after: str, color: str | None) -> str:
    raw = json.dumps({"after": after, "color": color}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_cursor(cursor: str, color: str | None) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
        after = check_fruit_id(decoded["after"])
    except (binascii.Error, ValueError, TypeError, KeyError, tac.InvalidInputError):
        raise BadCursor("not a cursor of this list") from None
    if decoded.get("color") != color:
        raise BadCursor("the cursor belongs to a list of another colour")
    return after
