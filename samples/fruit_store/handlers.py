"""HTTP in and out: parse the request, call one action, answer JSON. Nothing else."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import pydantic

import tor_async_couchdb as tac
from tor_async_couchdb.tornado import (
    CouchRequestHandler,
    ErrorMap,
    ErrorRule,
    HTTPProblem,
    etag_for,
    if_match,
)

from .actions import MAX_PAGE, BadCursor, FruitStore, OwnerTokenError, StaleRevision
from .models import COLOR_PATTERN, Eating, Fruit, FruitChange, NewFruit

_B = TypeVar("_B", bound=pydantic.BaseModel)

OWNER_TOKEN_HEADER = "X-Owner-Token"

# The service's own outcomes, tried before the library's mapping (which answers a tampered
# document 500 "tampered", and logs it).
ERRORS = ErrorMap().with_rules(
    ErrorRule(StaleRevision, 412, "precondition_failed", "If-Match is not the current revision"),
    ErrorRule(BadCursor, 400, "invalid_cursor", None),
    ErrorRule(tac.InvalidNameError, 400, "invalid_id", "not a fruit id"),
)


class FruitHandler(CouchRequestHandler):
    """The base of the fruit handlers: the store, and request-body parsing."""

    def initialize(self, store: FruitStore) -> None:
        self.store = store

    def body_as(self, shape: type[_B]) -> _B:
        """The JSON body checked against ``shape``: a 400 naming the failing fields."""
        try:
            return shape.model_validate(self.json_body())
        except pydantic.ValidationError as error:
            paths = [".".join(map(str, e["loc"])) or "body" for e in error.errors()]
            reasons = "; ".join(
                f"{p}: {e['msg']}" for p, e in zip(paths, error.errors(), strict=True)
            )
            raise HTTPProblem(400, "invalid", reasons, fields=paths) from None

    def answer_fruit(self, fruit: Fruit, *, status: int = 200, **extra: Any) -> None:
        """Answer the fruit, with its revision as the ETag."""
        if fruit.rev is not None:
            self.set_header("ETag", etag_for(fruit.rev))
        self.write_json({**fruit.public(), **extra}, status=status)


class FruitsHandler(FruitHandler):
    """``/v1.0/fruits``: create (POST) and list (GET)."""

    metrics_route = "/v1.0/fruits"

    async def post(self) -> None:
        new = self.body_as(NewFruit)
        fruit, token = await self.deadline(self.store.create(new))
        self.set_header("Location", f"/v1.0/fruits/{fruit.fruit_id}")
        # The owner token is shown this once; only its argon2id hash is stored.
        self.answer_fruit(fruit, status=201, owner_token=token)

    async def get(self) -> None:
        limit = self._limit()
        color = self.get_query_argument("color", None)
        if color is not None and not re.fullmatch(COLOR_PATTERN, color):
            raise HTTPProblem(400, "invalid", "not a colour", fields=["color"])
        cursor = self.get_query_argument("cursor", None)
        page = await self.deadline(self.store.page(limit=limit, cursor=cursor, color=color))
        body: dict[str, Any] = {"fruits": [fruit.public() for fruit in page.fruits]}
        body["next_cursor"] = page.cursor
        self.write_json(body)

    def _limit(self) -> int:
        raw = self.get_query_argument("limit", "20")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
            raise HTTPProblem(400, "invalid", f"limit must be 1 to {MAX_PAGE}", fields=["limit"])
        return int(raw)


class OneFruitHandler(FruitHandler):
    """``/v1.0/fruits/{fruit_id}``: read, change, delete."""

    metrics_route = "/v1.0/fruits/{fruit_id}"

    async def get(self, fruit_id: str) -> None:
        self.answer_fruit(await self.deadline(self.store.get(fruit_id)))

    async def put(self, fruit_id: str) -> None:
        change = self.body_as(FruitChange)
        condition = if_match(self)
        fruit = await self.deadline(self.store.change(fruit_id, change, if_match=condition))
        self.answer_fruit(fruit)

    async def delete(self, fruit_id: str) -> None:
        token = self.request.headers.get(OWNER_TOKEN_HEADER)
        try:
            await self.deadline(
                self.store.delete(fruit_id, owner_token=token, if_match=if_match(self))
            )
        except OwnerTokenError as error:
            if error.missing:
                raise HTTPProblem(
                    401,
                    "owner_token_required",
                    f"send the owner token in {OWNER_TOKEN_HEADER}",
                    fields=[OWNER_TOKEN_HEADER],
                ) from None
            raise HTTPProblem(
                403,
                "wrong_owner_token",
                "the owner token does not match",
                fields=[OWNER_TOKEN_HEADER],
            ) from None
        self.set_status(204)
        self.finish()


class EatenHandler(FruitHandler):
    """``POST /v1.0/fruits/{fruit_id}/eaten``: the hot counter and set of the load test."""

    metrics_route = "/v1.0/fruits/{fruit_id}/eaten"

    async def post(self, fruit_id: str) -> None:
        eating = self.body_as(Eating)
        saved = await self.deadline(self.store.eat(fruit_id, eating.by))
        self.set_header("X-Conflicts-Retried", str(saved.conflicts_retried))
        if saved.fruit.rev is not None:
            self.set_header("ETag", etag_for(saved.fruit.rev))
        # Lean on purpose: the set of a hot fruit grows long; GET shows it.
        fruit = saved.fruit
        self.write_json({"fruit_id": fruit.fruit_id, "eaten": fruit.eaten.value, "by": eating.by})


class NotFoundHandler(CouchRequestHandler):
    """Every other path: a JSON 404."""

    metrics_route = "unmatched"

    def prepare(self) -> None:
        super().prepare()
        raise HTTPProblem(404, "not_found", "no such resource")
