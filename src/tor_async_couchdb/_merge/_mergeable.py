"""Merge policies declared on models, and the model base that keeps their metadata.

Declaring::

    class Fruit(Mergeable, type_name="fruit", version="1.0"):
        color: str                                   # a last-writer-wins register (default)
        price: Annotated[Decimal, Max()]             # the largest value any leaf holds
        first_seen: Annotated[datetime, Min()]
        eaten: PNCounter = Field(default_factory=PNCounter)
        tags: ORSet[str] = Field(default_factory=ORSet)
        origin: Origin                               # a nested model: merged field by field

A field without a policy marker is a last-writer-wins register, ordered by the hybrid logical
clock stamp of its last write (``stamps``, a field of every mergeable model, maps each
register's path to its stamp). A field typed as a pydantic model (not optional) is merged
field by field, by the same rules. A model may instead define its own ``merge`` classmethod.

Writing through the model keeps the metadata right without the caller's help: registers are
compared with their values as read (a snapshot taken when the model was validated), counters
and sets record pending changes; :func:`seal` (called by the store before each write, with the
writer's :class:`~._clock.HybridClock`) stamps what changed and credits pending changes to the
writer. :meth:`Mergeable.to_doc` refuses to write unsealed changes rather than lose them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, ClassVar, Final, Literal, Self, get_args, get_origin

from pydantic import BaseModel, Field, GetCoreSchemaHandler, model_validator
from pydantic_core import core_schema

from .._exceptions import InvalidInputError, ModelDefinitionError
from .._models import FieldMarker, Model
from ._canonical import canonical_bytes
from ._clock import HybridClock, Stamp, parse_stamp
from ._crdts import GCounter, ORSet
from ._errors import UnsealedChangeError

__all__ = [
    "DeletePolicy",
    "FieldPolicy",
    "LastWriterWins",
    "Max",
    "Mergeable",
    "Min",
    "ReadPolicy",
    "Stamps",
    "merge_plan",
    "seal",
]

DeletePolicy = Literal["update_wins", "delete_wins"]
# What the store's ``get`` (and ``update``) reads of a conflicted document: the merge of its
# leaves, or CouchDB's winning leaf alone.
ReadPolicy = Literal["resolve", "winner"]
# The base fields merged by their own rules (id and rev are the document's; tombstone follows
# the delete policy), and the metadata field itself.
_OWN_FIELDS: Final = frozenset({"id", "rev", "tombstone", "stamps"})


# --- markers --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LastWriterWins(FieldMarker):
    """The value of the latest write wins, by hybrid logical clock, then by node id. (The
    default of unmarked fields; use it to say so.)"""


@dataclass(frozen=True, slots=True)
class Max(FieldMarker):
    """The largest value of any leaf wins (the value must be comparable)."""


@dataclass(frozen=True, slots=True)
class Min(FieldMarker):
    """The smallest value of any leaf wins (the value must be comparable)."""


# --- the register stamps --------------------------------------------------------------------


class Stamps:
    """The clock stamps of a model's registers, by path (``"color"``, ``"origin.city"``).

    Stored as ``{path: "<wall>.<logical>@<node>"}``. It also keeps, unstored, the registers'
    values as they were read, which :func:`seal` compares against to find what changed.
    """

    __slots__ = ("_by_path", "_seen")

    def __init__(self, by_path: Mapping[str, Stamp] | None = None) -> None:
        self._by_path: dict[str, Stamp] = dict(by_path or {})
        self._seen: dict[str, bytes] | None = None

    def __getitem__(self, path: str) -> Stamp:
        return self._by_path[path]

    def get(self, path: str) -> Stamp | None:
        """The stamp of ``path``, if it has one."""
        return self._by_path.get(path)

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_path)

    def __len__(self) -> int:
        return len(self._by_path)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stamps) and self._by_path == other._by_path

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Stamps({ {p: str(s) for p, s in sorted(self._by_path.items())} })"

    def copy(self) -> Stamps:
        """An independent copy, with the snapshot of values as read."""
        twin = Stamps(self._by_path)
        twin._seen = None if self._seen is None else dict(self._seen)
        return twin

    def to_json(self) -> dict[str, str]:
        """The stored form, sorted by path."""
        return {path: str(stamp) for path, stamp in sorted(self._by_path.items())}

    @classmethod
    def from_json(cls, raw: object) -> Stamps:
        """Read the stored form. Raises :class:`ValueError` if it is not one."""
        if isinstance(raw, Stamps):
            return raw.copy()
        if not isinstance(raw, Mapping):
            raise ValueError("stamps are stored as an object of paths to clock stamps")
        try:
            return cls({str(path): parse_stamp(text) for path, text in raw.items()})
        except InvalidInputError as error:
            raise ValueError(str(error)) from None

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


# --- the plan: which policy applies where ---------------------------------------------------

PolicyKind = Literal["lww", "max", "min", "counter", "orset"]


@dataclass(frozen=True, slots=True)
class FieldPolicy:
    """How one field (at ``path``, a tuple of field names) merges."""

    path: tuple[str, ...]
    kind: PolicyKind

    @property
    def key(self) -> str:
        """The path as written in ``stamps``."""
        return ".".join(self.path)


@dataclass(frozen=True, slots=True)
class _Nested:
    path: tuple[str, ...]
    plan: tuple[FieldPolicy | _Nested, ...]


PlanItem = FieldPolicy | _Nested


@cache
def merge_plan(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> tuple[PlanItem, ...]:
    """The policy of each field of ``model`` (nested models as their own plans).

    Raises :class:`ModelDefinitionError` for two policies on one field.
    """
    plan: list[PlanItem] = []
    for name, field in model.model_fields.items():
        if not prefix and name in _OWN_FIELDS:
            continue
        path = (*prefix, name)
        kind = _declared_kind(model, name, field.annotation, field.metadata)
        nested = _nested_model(field.annotation)
        if kind is None and nested is not None:
            plan.append(_Nested(path, merge_plan(nested, path)))
        else:
            plan.append(FieldPolicy(path, kind or "lww"))
    return tuple(plan)


def _declared_kind(
    model: type[BaseModel], name: str, annotation: Any, metadata: Sequence[object]
) -> PolicyKind | None:
    found: list[PolicyKind] = []
    origin = get_origin(annotation) or annotation
    if isinstance(origin, type) and issubclass(origin, GCounter):
        found.append("counter")
    if isinstance(origin, type) and issubclass(origin, ORSet):
        found.append("orset")
    for marker in metadata:
        if isinstance(marker, LastWriterWins):
            found.append("lww")
        elif isinstance(marker, Max):
            found.append("max")
        elif isinstance(marker, Min):
            found.append("min")
    if len(found) > 1:
        raise ModelDefinitionError(
            f"{model.__qualname__}.{name}: one merge policy per field, not {found}",
            model=model.__qualname__,
        )
    return found[0] if found else None


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    # Only a plain model type: an optional one is a register (None has no fields to merge).
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def register_paths(plan: Sequence[PlanItem]) -> Iterator[FieldPolicy]:
    """The last-writer-wins registers of a plan, nested ones included."""
    for item in plan:
        if isinstance(item, _Nested):
            yield from register_paths(item.plan)
        elif item.kind == "lww":
            yield item


def _at(model: object, path: tuple[str, ...]) -> Any:
    for name in path:
        model = getattr(model, name)
    return model


def json_at(dumped: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at ``path`` of a model's JSON form (``None`` where a level is missing)."""
    value: Any = dumped
    for name in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


# --- the model base -------------------------------------------------------------------------


class Mergeable(Model, abstract=True):
    """Base of models whose replication conflicts are merged by declared policies.

    ``delete_policy`` (a class variable) settles a delete concurrent with an update:
    ``"update_wins"`` (the default, as CouchDB's own winner rule) or ``"delete_wins"``. The
    never-delete ``tombstone`` follows it too (kept if any leaf set it, under delete wins; only
    if every leaf did, under update wins).

    ``read_policy`` (a class variable) says what the store's ``get`` and ``update`` read of a
    conflicted document: ``"resolve"`` (the default) the merge of its leaves, as the
    reconciler will write it, so that a write starts from every leaf's changes;
    ``"winner"`` CouchDB's winning leaf alone (one request less; ``db.conflicts`` still
    reports the leaves).
    """

    delete_policy: ClassVar[DeletePolicy] = "update_wins"
    read_policy: ClassVar[ReadPolicy] = "resolve"

    stamps: Stamps = Field(default_factory=Stamps)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Check the merge policies too when the class is made (not at the first conflict).
        Raises :class:`ModelDefinitionError`."""
        super().__pydantic_init_subclass__(**kwargs)
        if cls.delete_policy not in ("update_wins", "delete_wins"):
            raise ModelDefinitionError(
                f"{cls.__qualname__}: delete_policy must be 'update_wins' or 'delete_wins', "
                f"not {cls.delete_policy!r}",
                model=cls.__qualname__,
            )
        if cls.read_policy not in ("resolve", "winner"):
            raise ModelDefinitionError(
                f"{cls.__qualname__}: read_policy must be 'resolve' or 'winner', "
                f"not {cls.read_policy!r}",
                model=cls.__qualname__,
            )
        merge_plan(cls)

    @model_validator(mode="after")
    def _remember_registers(self) -> Self:
        # Taken once per object, when it is read or built; later validations (on assignment,
        # on model_copy) keep the first snapshot, so a change stays visible until sealed.
        if self.stamps._seen is None:
            self.stamps._seen = _register_bytes(self)
        return self

    @classmethod
    def merge(cls, leaves: Sequence[Self]) -> Self | None:
        """Merge the leaves (in a canonical order): ``None`` means field by field, by the
        declared policies. Override to merge the whole model yourself; the result must depend
        only on the set of leaves."""
        return None

    def unsealed(self) -> tuple[str, ...]:
        """The paths of fields changed since the last seal (or since the model was read)."""
        changes = _changes(self)
        return (*changes.registers, *changes.pending)

    def to_doc(self) -> dict[str, Any]:
        """As :meth:`Model.to_doc`; raises :class:`UnsealedChangeError` if changes have not been
        sealed (the store seals before writing): written so, they could lose to older writes."""
        changed = self.unsealed()
        if changed:
            raise UnsealedChangeError(
                f"{type(self).__qualname__} {self.id!r} has unsealed changes to {changed}: "
                "seal(model, clock) before writing it",
                model=type(self).__qualname__,
                fields=changed,
            )
        return super().to_doc()

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """As :meth:`Model.model_copy`; the copy's metadata is its own."""
        copied = super().model_copy(update=update, deep=deep)
        if not update and not deep:
            copied.__dict__["stamps"] = self.stamps.copy()
            for name, value in self.__dict__.items():
                if isinstance(value, GCounter | ORSet):
                    copied.__dict__[name] = value.copy()
        return copied


def _crdt_items(
    model: BaseModel, plan: Sequence[PlanItem]
) -> Iterator[tuple[FieldPolicy, GCounter | ORSet[Any]]]:
    for item in plan:
        if isinstance(item, _Nested):
            yield from _crdt_items(model, item.plan)
        elif item.kind in ("counter", "orset"):
            yield item, _at(model, item.path)


def _register_bytes(model: Mergeable) -> dict[str, bytes]:
    dumped = model.__pydantic_serializer__.to_python(model, mode="json")
    plan = merge_plan(type(model))
    return {p.key: canonical_bytes(json_at(dumped, p.path)) for p in register_paths(plan)}


@dataclass(frozen=True, slots=True)
class _Changes:
    registers: tuple[str, ...]  # changed, or never stamped
    pending: tuple[str, ...]  # counters and sets with pending changes
    current: dict[str, bytes]  # the registers' values now
    crdts: tuple[GCounter | ORSet[Any], ...]


def _changes(model: Mergeable) -> _Changes:
    plan = merge_plan(type(model))
    seen = model.stamps._seen or {}
    current = _register_bytes(model)
    stamped = model.stamps._by_path
    registers = tuple(
        p.key
        for p in register_paths(plan)
        if p.key not in stamped or seen.get(p.key) != current[p.key]
    )
    items = list(_crdt_items(model, plan))
    pending = tuple(item.key for item, value in items if value.pending)
    return _Changes(registers, pending, current, tuple(value for _, value in items))


def seal(model: Mergeable, clock: HybridClock) -> Stamp | None:
    """Stamp what changed in ``model`` since it was read, as a write by ``clock``'s node.

    Registers whose value changed (or that have no stamp yet) get one new stamp, later than
    every stamp the document carries (so the write follows them causally, whatever the local
    wall clock says); pending counter and set changes are credited to the writer. Returns the
    new stamp, or ``None`` if nothing changed. Call it once per write, just before
    :meth:`Mergeable.to_doc`.
    """
    changes = _changes(model)
    model.stamps._seen = changes.current
    if not changes.registers and not changes.pending:
        return None
    stamp = clock.after(model.stamps._by_path.values())
    for key in changes.registers:
        model.stamps._by_path[key] = stamp
    for value in changes.crdts:
        value.seal(clock.node)
    return stamp
