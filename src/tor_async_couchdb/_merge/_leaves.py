"""The deterministic merge of a conflicted document's leaf revisions (pure: no I/O).

:func:`resolve_leaves` takes the leaf bodies (as ``GET /db/id?open_revs=all`` returns them) and
returns a :class:`Resolution`: the resolved body, the child of CouchDB's winning leaf to write
(if the winner is not already the merge) and a tombstone for every other leaf. Its result
depends only on the set of leaf bodies: not on their order, the local clock, the process's
hash seed, or which data center computes it; the documents to write are in canonical form
(:mod:`._canonical`), so two resolvers of the same leaves write the same revisions, and
resolving an already merged document writes nothing new.

What it never does is guess. A leaf that is not valid for its model, of a newer version than
this code knows, fails its signature check, carries metadata a policy cannot read, or belongs
to a model without merge policies raises :class:`BadLeafError` and nothing is written.

Deletes: a deleted leaf that a resolver wrote (a tombstone with ``"merged": true``) is history
and takes no part. A deleted leaf written by anyone else is a delete concurrent with the
other leaves' updates: under ``update_wins`` the updates are merged and the delete is set
aside; under ``delete_wins`` every leaf is tombstoned. Either way the delete's own leaf is
closed by a resolver tombstone, so a later re-creation is not undone by it.

Hooks for data protection (:class:`LeafHooks`): ``verify`` checks each live leaf (a leaf whose
check raises is quarantined); ``decode`` gives the plain document a model reads (decrypted);
values are always carried over in their stored form, from the leaf that wins them, so an
encrypted value and its key id are never decrypted and re-encrypted by a merge; ``sign``
signs the merged body, given the winning leaf (whose key id a deterministic signer reuses).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .._exceptions import InvalidInputError, ModelValidationError, WrongTypeError
from .._models import WRITE_STAMP, Model, ModelSet, parse_type
from ._canonical import canonical_bytes, canonical_doc
from ._clock import Stamp
from ._crdts import ORSet
from ._errors import BadLeafError, LeafProblem
from ._mergeable import FieldPolicy, Mergeable, PlanItem, _Nested, json_at, merge_plan

__all__ = ["LeafHooks", "Resolution", "is_resolver_tombstone", "resolve_leaves", "winning_rev"]

MERGED_KEY: Final = "merged"
_ZERO: Final = Stamp(0, 0, "")
# Keys CouchDB adds to a read document that are not part of its body.
_READ_ONLY: Final = frozenset(
    {"_id", "_rev", "_revisions", "_revs_info", "_conflicts", "_deleted_conflicts", "_local_seq"}
)
_MODEL_KEYS: Final = frozenset({"type", "stamps", "tombstone"})
# Keys a stored document of a model may lack: a never-delete tombstone left out when false,
# a cluster's write stamp when written to a single node.
_OPTIONAL_KEYS: Final = frozenset({"_id", "_rev", "tombstone", WRITE_STAMP})
# Mergeable's own merge (field by field): a model that keeps it needs no leaf ordering.
_DEFAULT_MERGE: Final = vars(Mergeable)["merge"].__func__


@dataclass(frozen=True, slots=True)
class LeafHooks:
    """What data protection plugs into a merge (each optional; see the module docstring).

    ``verify(stored)`` raises for a tampered leaf (live leaves and users' deletes);
    ``decode(stored)`` returns the plain document; ``sign(doc, leaf)`` returns ``doc`` signed,
    for every document a resolution writes: the merged body (``leaf`` the winner), each
    resolver tombstone and each closure (``leaf`` the one it deletes or closes). A signature
    must be deterministic (the same document signs the same way in every data center, so that
    two resolvers of one conflict still write the same revisions).
    """

    verify: Callable[[Mapping[str, Any]], None] | None = None
    decode: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    sign: Callable[[dict[str, Any], Mapping[str, Any]], dict[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class Resolution:
    """The outcome of merging one document's leaves.

    ``winner`` is the revision CouchDB picks among the live leaves (``None`` if every leaf is
    deleted); ``body`` the resolved document (``None`` if it resolves to deleted); ``merged``
    the child of ``winner`` to write (``None`` when the winner already holds the merge);
    ``tombstones`` one resolver tombstone per other live leaf (children, written as usual);
    ``closures`` one per user's deleted leaf, written with ``new_edits=false`` (see
    :func:`closure`). ``writes`` are the documents written as usual, merged child first.
    """

    doc_id: str
    winner: str | None
    body: dict[str, Any] | None
    merged: dict[str, Any] | None
    tombstones: tuple[dict[str, Any], ...]
    closures: tuple[dict[str, Any], ...] = ()

    @property
    def writes(self) -> list[dict[str, Any]]:
        """The documents to write as usual (``new_edits`` true), merged child first."""
        return [*([self.merged] if self.merged is not None else []), *self.tombstones]

    @property
    def settled(self) -> bool:
        """Whether there is nothing to write: the document already is its merge."""
        return not self.tombstones and not self.closures and self.merged is None


@dataclass(frozen=True, slots=True)
class _Leaf:
    rev: str
    stored: Mapping[str, Any]  # as read: values carried from here
    working: Mapping[str, Any]  # the stored form of the model's current version
    model: Mergeable


def is_resolver_tombstone(leaf: Mapping[str, Any]) -> bool:
    """Whether a deleted leaf is one a resolver wrote (history, not a user's delete)."""
    return bool(leaf.get("_deleted")) and leaf.get(MERGED_KEY) is True


def winning_rev(revs: Sequence[str]) -> str:
    """CouchDB's winner among live leaf revisions: the longest history, then the highest id."""
    return max(revs, key=_rev_key)


def _rev_key(rev: str) -> tuple[int, str]:
    number, _, rev_id = rev.partition("-")
    return (int(number) if number.isdigit() else -1, rev_id)


def resolve_leaves(
    models: ModelSet | type[Model],
    leaves: Sequence[Mapping[str, Any]],
    *,
    hooks: LeafHooks | None = None,
) -> Resolution:
    """Merge the leaf bodies of one document (``_id``, ``_rev`` and maybe ``_deleted`` each).

    Raises :class:`BadLeafError` (see the module docstring) and, for leaves of two documents
    or none, :class:`InvalidInputError`.
    """
    hooks = hooks or LeafHooks()
    unique = _unique_leaves(leaves)
    doc_id = str(unique[0]["_id"])
    live = [leaf for leaf in unique if not leaf.get("_deleted")]
    deletes = [leaf for leaf in unique if leaf.get("_deleted") and not is_resolver_tombstone(leaf)]
    if hooks.verify is not None:
        for leaf in deletes:  # (a forged delete would otherwise tombstone every leaf)
            _verify(leaf, hooks.verify)
    closures = tuple(closure(leaf) for leaf in deletes) if len(unique) > 1 else ()
    if hooks.sign is not None:
        closures = _signed(closures, deletes, hooks.sign)
    if not live:
        # Every leaf deleted: still close the users' deletes (left by a resolution cut
        # short), so that a later re-creation is not taken for a concurrent update.
        return Resolution(doc_id, None, None, None, (), closures)
    read = [_read_leaf(models, leaf, hooks) for leaf in live]
    model = _one_model(read, doc_id)
    winner = next(leaf for leaf in read if leaf.rev == winning_rev([leaf.rev for leaf in read]))
    if model.delete_policy == "delete_wins" and deletes:
        tombstones = _tombstones(doc_id, live, hooks)
        return Resolution(doc_id, winner.rev, None, None, tombstones, closures)
    others = [leaf for leaf in live if leaf["_rev"] != winner.rev]
    # One live leaf is its own merge (only a concurrent delete was left to close).
    body = _content(winner.stored) if len(read) == 1 else _merged_body(model, read, winner, hooks)
    resolved = canonical_doc({"_id": doc_id, "_rev": winner.rev, **body})
    # (A dict compares equal whatever its key order: the winner's stored order is no change.)
    unchanged = {k: v for k, v in resolved.items() if k not in _READ_ONLY} == _content(
        winner.stored
    )
    merged = None if unchanged else resolved
    tombstones = _tombstones(doc_id, others, hooks)
    return Resolution(doc_id, winner.rev, resolved, merged, tombstones, closures)


def _unique_leaves(leaves: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    by_rev: dict[str, Mapping[str, Any]] = {}
    for leaf in leaves:
        rev = leaf.get("_rev")
        if not isinstance(rev, str):
            raise InvalidInputError("every leaf needs a _rev")
        by_rev.setdefault(rev, leaf)
    if not by_rev:
        raise InvalidInputError("no leaves to merge")
    if len({str(leaf.get("_id")) for leaf in by_rev.values()}) != 1:
        raise InvalidInputError("the leaves belong to more than one document")
    return [by_rev[rev] for rev in sorted(by_rev, key=_rev_key)]


def _content(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in doc.items() if key not in _READ_ONLY}


def _tombstones(
    doc_id: str, leaves: Sequence[Mapping[str, Any]], hooks: LeafHooks
) -> tuple[dict[str, Any], ...]:
    tombstones = tuple(
        canonical_doc({"_id": doc_id, "_rev": leaf["_rev"], "_deleted": True, MERGED_KEY: True})
        for leaf in leaves
    )
    return tombstones if hooks.sign is None else _signed(tombstones, leaves, hooks.sign)


def _signed(
    docs: Sequence[dict[str, Any]],
    leaves: Sequence[Mapping[str, Any]],
    sign: Callable[[dict[str, Any], Mapping[str, Any]], dict[str, Any]],
) -> tuple[dict[str, Any], ...]:
    return tuple(canonical_doc(sign(doc, leaf)) for doc, leaf in zip(docs, leaves, strict=True))


def closure(deleted: Mapping[str, Any]) -> dict[str, Any]:
    """The resolver tombstone that closes a user's deleted leaf, to be written with
    ``new_edits=false``: a child of the leaf with a revision id derived from the leaf's own.

    Why not an ordinary child: CouchDB 3 refuses (409) a child of a deleted leaf once every
    leaf of the document is deleted, which another data center's tombstones may have made so
    at any moment; a replicated-style write is never refused. Why derived: every data center
    closes the same leaf with the same revision, so replication finds nothing new.
    """
    rev = str(deleted["_rev"])
    number, _, parent = rev.partition("-")
    child = hashlib.md5(f"tor-async-couchdb:closed:{rev}".encode()).hexdigest()
    start = (int(number) if number.isdigit() else 0) + 1
    return canonical_doc(
        {
            "_id": str(deleted["_id"]),
            "_rev": f"{start}-{child}",
            "_deleted": True,
            "_revisions": {"start": start, "ids": [child, parent]},
            MERGED_KEY: True,
        }
    )


# --- reading the leaves ---------------------------------------------------------------------


def _bad(kind: LeafProblem, leaf: Mapping[str, Any], problem: str) -> BadLeafError:
    doc_id, rev = leaf.get("_id"), leaf.get("_rev")
    return BadLeafError(
        f"leaf {rev!r} of document {doc_id!r} cannot be merged ({kind}): {problem}",
        kind=kind,
        doc_id=doc_id if isinstance(doc_id, str) else None,
        rev=rev if isinstance(rev, str) else None,
    )


def _read_leaf(
    models: ModelSet | type[Model], stored: Mapping[str, Any], hooks: LeafHooks
) -> _Leaf:
    if hooks.verify is not None:
        _verify(stored, hooks.verify)
    plain = hooks.decode(stored) if hooks.decode is not None else stored
    model_class = _model_of(models, plain)
    if not issubclass(model_class, Mergeable):
        raise _bad("no_policy", stored, f"{model_class.__qualname__} declares no merge policies")
    try:
        model = model_class.from_doc(plain)
    except WrongTypeError as error:
        kind: LeafProblem = "newer_version" if _is_newer(model_class, plain) else "invalid"
        raise _bad(kind, stored, str(error)) from error
    except ModelValidationError as error:
        raise _bad(_validation_kind(model_class, error), stored, str(error)) from error
    return _Leaf(str(stored["_rev"]), stored, _working_form(model, stored, plain), model)


def _verify(stored: Mapping[str, Any], verify: Callable[[Mapping[str, Any]], None]) -> None:
    try:
        verify(stored)
    except Exception as error:  # the signer's own error types are not ours to list
        raise _bad("tampered", stored, f"its signature check failed: {error}") from error


def _model_of(models: ModelSet | type[Model], doc: Mapping[str, Any]) -> type[Model]:
    if isinstance(models, ModelSet):
        try:
            return models.model_for_type(doc.get("type"), doc_id=doc.get("_id"))
        except WrongTypeError as error:
            raise _bad("no_policy", doc, str(error)) from error
    return models


def _is_newer(model: type[Model], doc: Mapping[str, Any]) -> bool:
    parsed = parse_type(doc.get("type"))
    info = model.couch_info()
    return parsed is not None and parsed[0] == info.type_name and parsed[1] > info.version


def _validation_kind(model: type[Mergeable], error: ModelValidationError) -> LeafProblem:
    metadata = {"stamps"} | {
        item.path[0] for item in _flat(merge_plan(model)) if item.kind in ("counter", "orset")
    }
    return "unreadable_metadata" if set(error.fields) & metadata else "invalid"


def _flat(plan: Sequence[PlanItem]) -> list[FieldPolicy]:
    flat: list[FieldPolicy] = []
    for item in plan:
        flat.extend(_flat(item.plan) if isinstance(item, _Nested) else [item])
    return flat


def _working_form(
    model: Mergeable, stored: Mapping[str, Any], plain: Mapping[str, Any]
) -> dict[str, Any]:
    # The model's own stored form (unchecked: a leaf read from the database has nothing to
    # seal), with the values exactly as stored where the leaf is of the current version: so
    # ciphertexts, and the order of lists, are carried over untouched.
    model_class = type(model)
    if plain.get("type") == model_class.couch_info().type_string:
        if stored.keys() >= model_class.__couch_doc_keys__ - _OPTIONAL_KEYS:
            return dict(stored)  # every field as stored: nothing to fill in
        current = Model.to_doc(model)
        current.update({key: value for key, value in stored.items() if key in current})
        return current
    return Model.to_doc(model)


def _one_model(leaves: Sequence[_Leaf], doc_id: str) -> type[Mergeable]:
    kinds = {type(leaf.model) for leaf in leaves}
    if len(kinds) != 1:
        names = sorted(kind.__qualname__ for kind in kinds)
        raise _bad("invalid", leaves[-1].stored, f"the leaves are of several models: {names}")
    return kinds.pop()


# --- merging --------------------------------------------------------------------------------


def _merged_body(
    model: type[Mergeable], leaves: Sequence[_Leaf], winner: _Leaf, hooks: LeafHooks
) -> dict[str, Any]:
    # A model's own merge gets the leaves in a canonical order; the policies need none (each
    # breaks its own ties by value).
    custom = None
    if getattr(model.merge, "__func__", None) is not _DEFAULT_MERGE:
        ordered = sorted(leaves, key=lambda leaf: canonical_bytes(leaf.working))
        custom = model.merge([leaf.model for leaf in ordered])
    if custom is not None:
        fields = {k: v for k, v in Model.to_doc(custom).items() if not k.startswith("_")}
    else:
        fields = _field_by_field(model, leaves)
    foreign = {
        key: value
        for key, value in winner.stored.items()
        if not key.startswith("_") and key not in model.model_fields and key not in _MODEL_KEYS
    }
    body: dict[str, Any] = {**foreign, **fields}
    if "_attachments" in winner.stored:
        body["_attachments"] = winner.stored["_attachments"]
    if hooks.sign is not None:
        body = hooks.sign(body, winner.stored)
    elif hooks.decode is None:
        model.from_doc(body)  # a merge that its own model refuses is a bug: fail loudly
    return body


def _field_by_field(model: type[Mergeable], leaves: Sequence[_Leaf]) -> dict[str, Any]:
    stamps: dict[str, Stamp] = {}
    fields = _merge_level(merge_plan(model), leaves, stamps)
    tombstones = [leaf.model.tombstone for leaf in leaves]
    tombstone = any(tombstones) if model.delete_policy == "delete_wins" else all(tombstones)
    body = {"type": model.couch_info().type_string, **fields}
    body["stamps"] = {key: str(stamp) for key, stamp in sorted(stamps.items())}
    if tombstone:
        body["tombstone"] = True
    return body


def _merge_level(
    plan: Sequence[PlanItem], leaves: Sequence[_Leaf], stamps: dict[str, Stamp]
) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for item in plan:
        name = item.path[-1]
        if isinstance(item, _Nested):
            merged[name] = _merge_level(item.plan, leaves, stamps)
        else:
            merged[name] = _merge_field(item, leaves, stamps)
    return merged


def _merge_field(policy: FieldPolicy, leaves: Sequence[_Leaf], stamps: dict[str, Stamp]) -> Any:
    values = [json_at(leaf.working, policy.path) for leaf in leaves]
    if policy.kind == "lww":
        ranked = [leaf.model.stamps.get(policy.key) or _ZERO for leaf in leaves]
        stamp = max(ranked)
        # Equal stamps (a value no clock stamped, or a hand-made document): the larger value
        # in canonical bytes, so that the choice does not depend on the order of the leaves.
        tied = [value for value, s in zip(values, ranked, strict=True) if s == stamp]
        value = tied[0] if len(tied) == 1 else max(tied, key=canonical_bytes)
        if stamp != _ZERO:
            stamps[policy.key] = stamp
        return value
    if policy.kind in ("max", "min"):
        return _extreme(policy, leaves, values)
    states = [_value_at(leaf.model, policy.path) for leaf in leaves]
    if policy.kind == "orset":
        _check_dots(policy, leaves, states)
    joined = states[0]
    for state in states[1:]:
        joined = joined.join(state)
    return joined.to_json()


def _extreme(policy: FieldPolicy, leaves: Sequence[_Leaf], values: Sequence[Any]) -> Any:
    # Compared as the model's values (a Decimal stored as a string must not compare as one);
    # equal values by their stored bytes, so that the choice does not depend on leaf order.
    # A missing value (None) loses either way.
    sign = 1 if policy.kind == "max" else -1
    ranked = []
    for leaf, stored in zip(leaves, values, strict=True):
        value = _value_at(leaf.model, policy.path)
        ranked.append(((value is not None, _Signed(value, sign)), canonical_bytes(stored), stored))
    try:
        return max(ranked, key=lambda entry: (entry[0], entry[1]))[2]
    except TypeError as error:
        raise _bad("invalid", leaves[0].stored, f"{policy.key}: {error}") from error


class _Signed:
    """A value that compares as itself (sign 1) or reversed (sign -1)."""

    __slots__ = ("sign", "value")

    def __init__(self, value: Any, sign: int) -> None:
        self.value, self.sign = value, sign

    def __lt__(self, other: _Signed) -> bool:
        if self.value is None or other.value is None:
            return False
        return bool(self.value < other.value) if self.sign > 0 else bool(other.value < self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Signed) and self.value == other.value

    __hash__ = None  # type: ignore[assignment]


def _value_at(model: object, path: tuple[str, ...]) -> Any:
    for name in path:
        model = getattr(model, name)
    return model


def _check_dots(policy: FieldPolicy, leaves: Sequence[_Leaf], states: Sequence[Any]) -> None:
    owners: dict[tuple[str, int], Any] = {}
    for leaf, state in zip(leaves, states, strict=True):
        assert isinstance(state, ORSet)
        for element, writer, n in state.to_json()["dots"]:
            owner = owners.setdefault((writer, n), element)
            if owner != element or type(owner) is not type(element):
                raise _bad(
                    "unreadable_metadata",
                    leaf.stored,
                    f"{policy.key}: dot ({writer}, {n}) tags both {owner!r} and {element!r}",
                )
