"""Pure parts of the store: the conflict policy, stored forms of key values, save results."""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated

import pytest
from pydantic import AfterValidator, BaseModel, Field, PlainSerializer, field_serializer

import tor_async_couchdb as tac


class Size(enum.Enum):
    SMALL = "s"
    LARGE = "l"


class Spot(BaseModel):
    seen_on: datetime


class Fruit(tac.Model, type_name="fruit", version="1.0"):
    fruit_id: Annotated[str, tac.Indexed()]
    size: Size = Size.SMALL
    price: Decimal = Decimal(0)
    updated_on: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    spots: list[Spot] = Field(default_factory=list)
    weight: float | None = None


def test_conflict_retry_defaults_and_checks() -> None:
    policy = tac.ConflictRetry()
    assert (policy.attempts, policy.backoff, policy.max_backoff) == (10, 0.01, 1.0)
    assert policy.jitter
    assert policy.deadline is None
    for bad in ({"attempts": 0}, {"backoff": -1}, {"max_backoff": -1}, {"deadline": 0}):
        with pytest.raises(tac.InvalidInputError, match="must"):
            tac.ConflictRetry(**bad)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        policy.attempts = 3  # type: ignore[misc]


def test_conflict_retry_delays() -> None:
    fixed = tac.ConflictRetry(backoff=0.1, max_backoff=0.5, jitter=False)
    assert [fixed.delay(n) for n in range(1, 6)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    jittered = tac.ConflictRetry(backoff=0.1, max_backoff=0.5)
    delays = [jittered.delay(3) for _ in range(200)]
    assert all(0 <= d <= 0.4 for d in delays)
    assert len(set(delays)) > 100  # spread, not constant
    immediate = tac.ConflictRetry.immediate(4)
    assert immediate.attempts == 4
    assert immediate.delay(3) == 0
    assert tac.ConflictRetry.never().attempts == 1


def test_stored_value_converts_like_to_doc() -> None:
    paris = timezone(timedelta(hours=1))
    when = datetime(2026, 11, 27, 12, 0, 0, 7, tzinfo=paris)
    doc = Fruit(
        fruit_id="f", size=Size.LARGE, price=Decimal("2.50"), updated_on=when, weight=1.5
    ).to_doc()
    assert tac.stored_value(Fruit, "updated_on", when) == doc["updated_on"]
    assert tac.stored_value(Fruit, "updated_on", when) == "2026-11-27T11:00:00.000007Z"
    assert tac.stored_value(Fruit, "size", Size.LARGE) == doc["size"] == "l"
    assert tac.stored_value(Fruit, "size", "l") == "l"
    assert tac.stored_value(Fruit, "price", Decimal("2.50")) == doc["price"] == "2.50"
    assert tac.stored_value(Fruit, "weight", None) is None
    spots = [Spot(seen_on=when)]
    assert tac.stored_value(Fruit, "spots", spots) == [{"seen_on": "2026-11-27T11:00:00.000007Z"}]


def test_stored_value_rejects_what_the_field_would() -> None:
    with pytest.raises(tac.InvalidInputError, match="no field"):
        tac.stored_value(Fruit, "colour", "red")
    with pytest.raises(tac.InvalidInputError, match="no field"):
        tac.stored_value(Fruit, "rev", "1-x")
    with pytest.raises(tac.InvalidInputError, match=r"Fruit\.size"):
        tac.stored_value(Fruit, "size", "medium")
    with pytest.raises(tac.InvalidInputError, match="timezone"):
        tac.stored_value(Fruit, "updated_on", datetime(2026, 1, 1))
    with pytest.raises(tac.InvalidInputError, match="timezone"):
        tac.stored_value(Fruit, "spots", [{"seen_on": datetime(2026, 1, 1)}])


def test_save_result() -> None:
    saved = Fruit(fruit_id="f", id="a", rev="1-x")
    ok = tac.SaveResult(saved)
    assert ok.ok
    assert ok.unwrap() is saved
    error = tac.Conflict("CouchDB answered 409", status=409, doc_id="a")
    failed = tac.SaveResult(saved, error)
    assert not failed.ok
    with pytest.raises(tac.Conflict):
        failed.unwrap()


def test_migration_progress_is_a_value() -> None:
    assert tac.MigrationProgress() == tac.MigrationProgress(0, 0, 0, None, False)
    assert tac.MigrationProgress(seen=2).seen == 2


class _Shaped(tac.Model, type_name="shaped", version="1.0"):
    email: Annotated[str, AfterValidator(str.lower), tac.Indexed()]
    code: Annotated[int, PlainSerializer(lambda v: f"{v:06d}", return_type=str), tac.Indexed()]
    name: Annotated[str, tac.Indexed()] = ""

    @field_serializer("name")
    def _shout(self, value: str) -> str:
        return value.upper()


def test_stored_value_applies_the_fields_validators_and_serializers() -> None:
    doc = _Shaped(email="A@X.org", code=42, name="bob").to_doc()
    assert tac.stored_value(_Shaped, "email", "A@X.ORG") == doc["email"] == "a@x.org"
    assert tac.stored_value(_Shaped, "code", 42) == doc["code"] == "000042"
    assert tac.stored_value(_Shaped, "name", "bob") == doc["name"] == "BOB"
