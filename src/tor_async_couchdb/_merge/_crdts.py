"""Field types whose values carry their own merge metadata: counters and add-wins sets.

Each is a small mutable object with a pydantic schema of its own: it validates from its stored
JSON (strictly: a hand-edited counter is refused, not guessed), dumps to it, and merges with
another state of the same field by a join that is commutative, associative and idempotent.

Changes are made through the model (``fruit.eaten.add(3)``, ``fruit.tags.add("x")``) and are
*pending* until the model is sealed with the writer's clock (:func:`~._model.seal`, which the
store calls before every write): only then is it known which writer's entry (or which dot) a
change belongs to. Reading (``.value``, ``in``, ``len``) includes pending changes.

Why entries per writer and not per data center: a state-based counter merges entries by
maximum, so two processes that shared one entry would each overwrite the other's increments.
The price is one entry per writer that ever changed the value; writer ids that are stable per
process slot (not random per start) bound it by the number of slots.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar, Final, Generic, Self, TypeVar, get_args

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

from .._exceptions import InvalidInputError, ModelDefinitionError
from ._canonical import canonical_bytes

__all__ = ["GCounter", "ORSet", "PNCounter"]

_WRITER_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
E = TypeVar("E", str, int)
Dot = tuple[str, int]


def _exact_int(value: object) -> bool:
    return type(value) is int


def _check_entries(raw: object, what: str) -> dict[str, int]:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{what} must be an object of writer ids to counts")
    entries: dict[str, int] = {}
    for writer, count in raw.items():
        if not isinstance(writer, str) or not _WRITER_RE.fullmatch(writer):
            raise ValueError(f"{what} has a bad writer id {writer!r}")
        if not _exact_int(count) or count < 0:
            raise ValueError(f"{what}[{writer!r}] must be a non-negative integer")
        entries[writer] = count
    return entries


def _join_entries(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    return {w: max(a.get(w, 0), b.get(w, 0)) for w in sorted(a.keys() | b.keys())}


# --- counters ------------------------------------------------------------------------------


class GCounter:
    """A grow-only counter: increments kept per writer, merged by maximum per writer.

    Stored as ``{"p": {writer: total}}``; reads as :attr:`value` (also ``int(counter)``).
    """

    __slots__ = ("_n", "_p", "_pending")
    _signed: ClassVar[bool] = False

    def __init__(self, p: Mapping[str, int] | None = None, n: Mapping[str, int] | None = None):
        self._p: dict[str, int] = dict(p or {})
        self._n: dict[str, int] = dict(n or {}) if self._signed else {}
        self._pending = 0

    @property
    def value(self) -> int:
        """The counter's value, pending changes included."""
        return sum(self._p.values()) - sum(self._n.values()) + self._pending

    @property
    def pending(self) -> int:
        """The change made since the last seal (not yet any writer's)."""
        return self._pending

    @property
    def writers(self) -> int:
        """How many writers have an entry: the metadata this counter keeps."""
        return len(self._p.keys() | self._n.keys())

    def __int__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, GCounter)
        return (self._p, self._n, self._pending) == (other._p, other._n, other._pending)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def add(self, amount: int = 1) -> None:
        """Count ``amount`` more. Raises :class:`InvalidInputError` for a negative amount (on
        a grow-only counter) or a non-integer."""
        if not _exact_int(amount):
            raise InvalidInputError(f"a counter adds integers, not {amount!r}")
        if amount < 0 and not self._signed:
            raise InvalidInputError("a GCounter only grows: use a PNCounter to subtract")
        self._pending += amount

    def seal(self, writer: str) -> None:
        """Credit the pending change to ``writer``'s entry."""
        if self._pending > 0:
            self._p[writer] = self._p.get(writer, 0) + self._pending
        elif self._pending < 0:
            self._n[writer] = self._n.get(writer, 0) - self._pending
        self._pending = 0

    def join(self, other: Self) -> Self:
        """The merge of two sealed states: the maximum of each writer's entries."""
        return type(self)(_join_entries(self._p, other._p), _join_entries(self._n, other._n))

    def copy(self) -> Self:
        """An independent copy, pending change included."""
        twin = type(self)(self._p, self._n)
        twin._pending = self._pending
        return twin

    def to_json(self) -> dict[str, Any]:
        """The stored form (sealed entries only), keys sorted."""
        stored: dict[str, Any] = {"p": dict(sorted(self._p.items()))}
        if self._signed:
            stored["n"] = dict(sorted(self._n.items()))
        return stored

    @classmethod
    def from_json(cls, raw: object) -> Self:
        """Read the stored form. Raises :class:`ValueError` if it is not one."""
        if isinstance(raw, cls):
            return raw.copy()
        keys = {"p", "n"} if cls._signed else {"p"}
        if not isinstance(raw, Mapping) or not raw.keys() <= keys:
            raise ValueError(f"a {cls.__name__} is stored as an object with keys {sorted(keys)}")
        return cls(_check_entries(raw.get("p", {}), "p"), _check_entries(raw.get("n", {}), "n"))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.from_json,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda value: value.to_json()
            ),
        )


class PNCounter(GCounter):
    """A counter that goes both ways: increments and decrements kept per writer.

    Stored as ``{"p": {writer: added}, "n": {writer: subtracted}}``.
    """

    __slots__ = ()
    _signed: ClassVar[bool] = True

    def subtract(self, amount: int = 1) -> None:
        """Count ``amount`` less."""
        if not _exact_int(amount):
            raise InvalidInputError(f"a counter subtracts integers, not {amount!r}")
        self.add(-amount)


# --- add-wins set ---------------------------------------------------------------------------


class ORSet(Generic[E]):
    """An add-wins (observed-remove) set of ``str`` or ``int`` elements.

    Each add is tagged with a dot ``(writer, n)``; a remove drops the dots it has seen, so an
    add that a remove has not seen (made concurrently elsewhere) survives the merge. The causal
    context (``writer -> highest n seen``) tells "removed here" from "not yet seen here", so no
    tombstones are kept: the metadata is one dot per element (more only after concurrent adds
    of one element) and one context entry per writer. Stored as
    ``{"dots": [[element, writer, n], ...], "ctx": {writer: n}}``, both sorted.
    """

    __slots__ = ("_adds", "_ctx", "_dots", "_kind")

    def __init__(
        self,
        elements: Iterable[E] = (),
        *,
        kind: type | None = None,
        dots: Mapping[E, Iterable[Dot]] | None = None,
        ctx: Mapping[str, int] | None = None,
    ) -> None:
        self._kind = kind
        self._dots: dict[E, set[Dot]] = {e: set(d) for e, d in (dots or {}).items()}
        self._ctx: dict[str, int] = dict(ctx or {})
        self._adds: dict[E, None] = {}
        for element in elements:
            self.add(element)

    # -- reading -----------------------------------------------------------------------------

    @property
    def value(self) -> frozenset[E]:
        """The elements, pending adds included."""
        return frozenset(self._dots.keys() | self._adds.keys())

    def __contains__(self, element: object) -> bool:
        return element in self._adds or element in self._dots

    def __iter__(self) -> Iterator[E]:
        return iter(sorted(self.value, key=canonical_bytes))

    def __len__(self) -> int:
        return len(self.value)

    def __repr__(self) -> str:
        return f"ORSet({sorted(self.value, key=canonical_bytes)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ORSet):
            return NotImplemented
        return (self._dots, self._ctx, self._adds.keys()) == (
            other._dots,
            other._ctx,
            other._adds.keys(),
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    @property
    def pending(self) -> frozenset[E]:
        """Elements added since the last seal (their dots are not made yet)."""
        return frozenset(self._adds)

    # -- writing -----------------------------------------------------------------------------

    def add(self, element: E) -> None:
        """Add ``element`` (again): it survives any remove made concurrently elsewhere."""
        self._check(element)
        self._adds[element] = None

    def discard(self, element: E) -> None:
        """Remove ``element`` if present: the adds seen here are undone, concurrent ones win."""
        self._adds.pop(element, None)
        self._dots.pop(element, None)

    def remove(self, element: E) -> None:
        """Remove ``element``; raises :class:`KeyError` if absent."""
        if element not in self:
            raise KeyError(element)
        self.discard(element)

    def _check(self, element: object) -> None:
        allowed = (self._kind,) if self._kind is not None else (str, int)
        if type(element) not in allowed:
            names = " or ".join(k.__name__ for k in allowed if k is not None)
            raise InvalidInputError(f"an ORSet element must be a {names}, not {element!r}")

    def seal(self, writer: str) -> None:
        """Give each pending add a new dot of ``writer``, replacing the dots it has seen."""
        for element in sorted(self._adds, key=canonical_bytes):
            n = self._ctx.get(writer, 0) + 1
            self._ctx[writer] = n
            self._dots[element] = {(writer, n)}
        self._adds.clear()

    # -- merging -----------------------------------------------------------------------------

    def _seen(self, dot: Dot) -> bool:
        return dot[1] <= self._ctx.get(dot[0], 0)

    def join(self, other: ORSet[E]) -> ORSet[E]:
        """The merge of two sealed states (both with the same element type)."""
        dots: dict[E, set[Dot]] = {}
        for element in self._dots.keys() | other._dots.keys():
            mine, theirs = self._dots.get(element, set()), other._dots.get(element, set())
            kept = (mine & theirs) | {d for d in mine if not other._seen(d)}
            kept |= {d for d in theirs if not self._seen(d)}
            if kept:
                dots[element] = kept
        return ORSet(kind=self._kind, dots=dots, ctx=_join_entries(self._ctx, other._ctx))

    def copy(self) -> ORSet[E]:
        """An independent copy, pending adds included."""
        twin: ORSet[E] = ORSet(kind=self._kind, dots=self._dots, ctx=self._ctx)
        twin._adds = dict(self._adds)
        return twin

    def to_json(self) -> dict[str, Any]:
        """The stored form (sealed state only), sorted."""
        triples = [[e, w, n] for e, dots in self._dots.items() for w, n in dots]
        triples.sort(key=canonical_bytes)
        return {"dots": triples, "ctx": dict(sorted(self._ctx.items()))}

    @classmethod
    def from_json(cls, raw: object, kind: type | None = None) -> ORSet[Any]:
        """Read the stored form. Raises :class:`ValueError` if it is not one, or breaks the
        set's invariants (a dot beyond its context, one dot for two elements)."""
        if isinstance(raw, ORSet):
            return raw.copy()
        if not isinstance(raw, Mapping) or raw.keys() != {"dots", "ctx"}:
            raise ValueError('an ORSet is stored as {"dots": [...], "ctx": {...}}')
        ctx = _check_entries(raw["ctx"], "ctx")
        if not isinstance(raw["dots"], list):
            raise ValueError("ORSet dots must be a list")
        dots: dict[Any, set[Dot]] = {}
        owners: set[Dot] = set()
        for triple in raw["dots"]:
            dot = _check_dot(triple, ctx, kind)
            if dot[1:] in owners:
                raise ValueError(f"ORSet dot {dot[1:]} tags two elements")
            owners.add(dot[1:])
            dots.setdefault(dot[0], set()).add(dot[1:])
        return ORSet(kind=kind, dots=dots, ctx=ctx)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        args = get_args(source)
        kind = args[0] if args else None
        if kind not in (str, int, None):
            raise ModelDefinitionError(
                f"ORSet elements must be str or int, not {kind!r}", model=repr(source)
            )
        return core_schema.no_info_plain_validator_function(
            lambda raw: cls.from_json(raw, kind),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda value: value.to_json()
            ),
        )


def _check_dot(triple: object, ctx: Mapping[str, int], kind: type | None) -> tuple[Any, str, int]:
    if not isinstance(triple, list) or len(triple) != 3:
        raise ValueError("an ORSet dot is [element, writer, n]")
    element, writer, n = triple
    allowed = (kind,) if kind is not None else (str, int)
    if type(element) not in allowed:
        raise ValueError(f"ORSet element {element!r} is not a {kind}")
    if not isinstance(writer, str) or not _WRITER_RE.fullmatch(writer):
        raise ValueError(f"ORSet dot has a bad writer id {writer!r}")
    if not _exact_int(n) or not 1 <= n <= ctx.get(writer, 0):
        raise ValueError(f"ORSet dot ({writer!r}, {n!r}) lies outside its context")
    return element, writer, n
