"""The fruit as stored, and the request bodies the service accepts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import pydantic

import tor_async_couchdb as tac

COLOR_PATTERN = r"^[a-z][a-z -]{0,31}$"


class Fruit(
    tac.Mergeable,
    type_name="fruit",
    version="1.0",
    # The colour filter pages by fruit id within one colour: one view serves both.
    indexes={"color_fruit_id": ("color", "fruit_id")},
):
    """A fruit. Its ``fruit_id`` is also its document id (time-ordered: lists run oldest
    first), kept as a field so that the ``fruit_id`` view can page through every fruit.

    Protected as the data classification asks: the owner token is kept only as an argon2id
    hash (``Hashed``), the note only encrypted (``Encrypted``), and every document is signed
    (the client's codecs). Merged by policies when data centers write at once: ``eaten`` is a
    counter and ``eaten_by`` a set (no acknowledged eating is lost), ``created_on`` the
    earliest and ``updated_on`` the latest any replica holds; the rest last writer wins.
    """

    fruit_id: Annotated[str, tac.Indexed()]
    color: str
    note: Annotated[str | None, tac.Encrypted()] = None
    owner_token: Annotated[tac.HashedSecret, tac.Hashed()]
    eaten: tac.PNCounter = pydantic.Field(default_factory=tac.PNCounter)
    eaten_by: tac.ORSet[str] = pydantic.Field(default_factory=tac.ORSet)
    created_on: Annotated[datetime, tac.Min()]
    updated_on: Annotated[datetime, tac.Max()]

    def public(self) -> dict[str, Any]:
        """The fruit as the API shows it (never the owner token's hash)."""
        return {
            "fruit_id": self.fruit_id,
            "color": self.color,
            "note": self.note,
            "eaten": self.eaten.value,
            "eaten_by": sorted(self.eaten_by),
            "created_on": _iso(self.created_on),
            "updated_on": _iso(self.updated_on),
        }


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


class _Body(pydantic.BaseModel):
    # Unknown fields are refused, not ignored: a typo must not pass as a request.
    model_config = pydantic.ConfigDict(extra="forbid", strict=True, frozen=True)


class NewFruit(_Body):
    """``POST /v1.0/fruits``."""

    color: Annotated[str, pydantic.StringConstraints(pattern=COLOR_PATTERN)]
    note: Annotated[str, pydantic.StringConstraints(max_length=500)] | None = None


class FruitChange(_Body):
    """``PUT /v1.0/fruits/{id}``: the colour, and the note if given."""

    color: Annotated[str, pydantic.StringConstraints(pattern=COLOR_PATTERN)]
    note: Annotated[str, pydantic.StringConstraints(max_length=500)] | None = None


class Eating(_Body):
    """``POST /v1.0/fruits/{id}/eaten``: who ate it (each eater counts once)."""

    by: Annotated[str, pydantic.StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
