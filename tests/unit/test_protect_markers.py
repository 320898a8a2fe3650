"""Hashed() and Encrypted() markers: refused on fields that cannot carry them, naming the
model and the field; encrypted round trips for every field type a model can hold."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import tor_async_couchdb as tac
from support.protect import decode, encode, ring
from tor_async_couchdb._protect import (
    Encrypted,
    Hashed,
    HashedSecret,
    Protection,
    check_model,
)


def test_a_well_marked_model_passes() -> None:
    class Customer(tac.Model, type_name="customer", version="1.0"):
        email: Annotated[str, tac.Indexed(), Encrypted(blind_index=True)]
        notes: Annotated[list[str], Encrypted()]
        password: Annotated[HashedSecret, Hashed()]
        token: Annotated[HashedSecret | None, Hashed()] = None

    check_model(Customer)
    assert dict(Customer.field_markers(Encrypted))["email"].view_member == "bi"


def bad_models() -> dict[str, tuple[type[tac.Model], str]]:
    class HashedStr(tac.Model, type_name="a", version="1.0"):
        password: Annotated[str, Hashed()]

    class HashedIndexed(tac.Model, type_name="b", version="1.0"):
        password: Annotated[HashedSecret, Hashed(), tac.Indexed()]

    class EncryptedSecret(tac.Model, type_name="c", version="1.0"):
        password: Annotated[HashedSecret, Encrypted()]

    class IndexedWithoutBlindIndex(tac.Model, type_name="d", version="1.0"):
        email: Annotated[str, tac.Indexed(), Encrypted()]

    class Compound(tac.Model, type_name="e", version="1.0", indexes={"ab": ("email", "n")}):
        email: Annotated[str, Encrypted(blind_index=True)]
        n: int

    class Twice(tac.Model, type_name="f", version="1.0"):
        email: Annotated[str, Encrypted(), Encrypted(pad=32)]

    return {
        "hashed str": (HashedStr, "password"),
        "hashed and indexed": (HashedIndexed, "password"),
        "encrypted secret": (EncryptedSecret, "password"),
        "indexed without blind index": (IndexedWithoutBlindIndex, "email"),
        "compound index": (Compound, "email"),
        "two protections": (Twice, "email"),
    }


@pytest.mark.parametrize("case", list(bad_models()))
def test_markers_a_field_cannot_carry_are_refused(case: str) -> None:
    model, field = bad_models()[case]
    with pytest.raises(tac.ModelDefinitionError) as caught:
        check_model(model)
    assert caught.value.model == model.__qualname__
    assert f"{model.__qualname__}.{field}:" in str(caught.value)


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class Part(BaseModel):
    name: str
    size: int


class Everything(tac.Model, type_name="everything", version="1.0"):
    text: Annotated[str, Encrypted()]
    number: Annotated[int, Encrypted()]
    real: Annotated[float, Encrypted()]
    flag: Annotated[bool, Encrypted()]
    maybe: Annotated[str | None, Encrypted()] = None
    when: Annotated[datetime, Encrypted()]
    amount: Annotated[Decimal, Encrypted()]
    color: Annotated[Color, Encrypted()]
    tags: Annotated[list[str], Encrypted()]
    counts: Annotated[dict[str, int], Encrypted()]
    part: Annotated[Part, Encrypted(blind_index=True)]


def everything(**values: Any) -> Everything:
    defaults: dict[str, Any] = {
        "id": "e1",
        "text": "t",
        "number": 1,
        "real": 1.5,
        "flag": True,
        "when": datetime(2026, 12, 1, 9, 40, tzinfo=UTC),
        "amount": Decimal("12.30"),
        "color": Color.RED,
        "tags": ["a"],
        "counts": {"a": 1},
        "part": Part(name="p", size=2),
    }
    return Everything(**{**defaults, **values})


async def test_every_field_type_round_trips_encrypted() -> None:
    check_model(Everything)
    protection = Protection.from_keyring(ring("k1"))
    model = everything()
    stored = await encode(protection, model)
    assert all(
        isinstance(stored[f], dict) and "ct" in stored[f]
        for f in Everything.model_fields
        if f not in ("id", "rev", "tombstone")
    )
    assert decode(protection, Everything, stored) == model


@settings(max_examples=40, deadline=None)
@given(
    text=st.text(),
    number=st.integers(-(2**63), 2**63 - 1),
    real=st.floats(allow_nan=False, allow_infinity=False),
    maybe=st.none() | st.text(max_size=5),
    when=st.datetimes(timezones=st.just(UTC)),
    amount=st.decimals(allow_nan=False, allow_infinity=False, places=2),
    tags=st.lists(st.text(max_size=5), max_size=4),
    counts=st.dictionaries(st.text(max_size=5), st.integers(-1000, 1000), max_size=4),
)
def test_hypothesis_round_trips_of_every_field_type(**values: Any) -> None:
    protection = Protection.from_keyring(ring("k1"))
    model = everything(**values)
    stored = asyncio.run(encode(protection, model))
    assert decode(protection, Everything, stored) == model
