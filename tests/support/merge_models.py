"""Models and a small history simulator shared by the merge tests (pure: no server)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, Field

from tor_async_couchdb._merge import (
    GCounter,
    HybridClock,
    Max,
    Mergeable,
    Min,
    ORSet,
    PNCounter,
    canonical_bytes,
    resolve_leaves,
    seal,
)


class Origin(BaseModel):
    city: str = "nowhere"
    farms: Annotated[int, Max()] = 0


class Fruit(Mergeable, type_name="fruit", version="1.0"):
    color: str = "green"
    price: Annotated[Decimal, Max()] = Decimal("0")
    first_seen: Annotated[datetime, Min()] = datetime(2030, 1, 1, tzinfo=UTC)
    eaten: PNCounter = Field(default_factory=PNCounter)
    picked: GCounter = Field(default_factory=GCounter)
    tags: ORSet[str] = Field(default_factory=ORSet)
    origin: Origin = Field(default_factory=Origin)


class Order(Mergeable, type_name="order", version="1.0"):
    delete_policy: ClassVar = "delete_wins"
    state: str = "new"


class FakeTime:
    """A wall clock the test moves by hand."""

    def __init__(self, ms: int = 1_800_000_000_000) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def rev_of(number: int, body: Mapping[str, Any]) -> str:
    """A revision id that depends on the content only, as CouchDB's does."""
    import hashlib

    return f"{number}-{hashlib.md5(canonical_bytes(body)).hexdigest()}"


def write(doc: Mapping[str, Any], clock: HybridClock, op: str, arg: int) -> dict[str, Any]:
    """Apply one operation to a stored document, as a writer with ``clock``; the new leaf."""
    fruit = Fruit.from_doc(doc)
    if op == "color":
        fruit.color = f"c{arg}"
    elif op == "price":
        fruit.price = Decimal(arg) / 4
    elif op == "seen":
        fruit.first_seen = datetime(2030, 1, 1 + arg, tzinfo=UTC)
    elif op == "eat":
        fruit.eaten.add(arg - 2)
    elif op == "pick":
        fruit.picked.add(arg)
    elif op == "add":
        fruit.tags.add(f"t{arg}")
    elif op == "remove":
        fruit.tags.discard(f"t{arg}")
    elif op == "city":
        fruit.origin = fruit.origin.model_copy(update={"city": f"city{arg}"})
    elif op == "farms":
        fruit.origin.farms = arg
    seal(fruit, clock)
    return _child(doc, fruit.to_doc())


def _child(parent: Mapping[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    # With its history (``_revisions``), so that a server given it with new_edits=false
    # files it under its parent, as replication does.
    number = int(str(parent.get("_rev", "0-x")).partition("-")[0]) + 1
    rev = rev_of(number, body)
    history = [rev.partition("-")[2], *parent.get("_revisions", {}).get("ids", [])]
    return {**body, "_rev": rev, "_revisions": {"start": number, "ids": history}}


OPS = ("color", "price", "seen", "eat", "pick", "add", "remove", "city", "farms")


def base_doc() -> dict[str, Any]:
    fruit = Fruit(id="fruit-1")
    seal(fruit, HybridClock("base", now=FakeTime()))
    return _child({}, fruit.to_doc())


def branch(
    base: Mapping[str, Any], clock: HybridClock, ops: Sequence[tuple[str, int]], time: FakeTime
) -> dict[str, Any]:
    doc = dict(base)
    for op, arg in ops:
        time.ms += 1 + arg
        doc = write(doc, clock, op, arg)
    return doc


def join(*leaves: Mapping[str, Any]) -> dict[str, Any]:
    """The merged content of ``leaves`` as a new leaf (with a content-derived revision)."""
    resolution = resolve_leaves(Fruit, list(leaves))
    assert resolution.body is not None
    content = {k: v for k, v in resolution.body.items() if k not in ("_rev",)}
    top = max(int(str(leaf["_rev"]).partition("-")[0]) for leaf in leaves)
    return {**content, "_rev": rev_of(top + 1, content)}


def content(doc: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a document without its revision (and history)."""
    return canonical_bytes({k: v for k, v in doc.items() if k not in ("_rev", "_revisions")})
